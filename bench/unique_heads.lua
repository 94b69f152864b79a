-- wrk script: every request has a request-line no earlier request had (a counter in the query
-- string) over the same field lines, as a browser or an API client fetching one resource after
-- another. prefork cannot reuse a whole earlier head; it checks the new request-line and reuses
-- the field lines (docs/architecture.md).
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", wrk.path .. "?n=" .. counter)
end

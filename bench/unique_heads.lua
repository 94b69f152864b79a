-- wrk script: every request has a head no earlier request had (a counter in the query string),
-- so no server can reuse the parse of a previous head; prefork then parses every head in full.
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", wrk.path .. "?n=" .. counter)
end

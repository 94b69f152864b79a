-- wrk script: every request differs in its request-line and in a header field (a counter in
-- both), so no part of an earlier head can be reused: prefork parses every head in full.
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", wrk.path .. "?n=" .. counter, { ["X-Request-Number"] = tostring(counter) })
end

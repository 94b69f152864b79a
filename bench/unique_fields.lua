-- wrk script: what a browser sends -- a head of 9 fields -- with a new target and a new cookie
-- on every request (a counter in both), so no part of an earlier head can be reused: the
-- server parses every head in full.
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", wrk.path .. "?n=" .. counter, {
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ["Accept-Language"] = "en-US,en;q=0.5",
    ["Accept-Encoding"] = "gzip, deflate, br, zstd",
    ["Referer"] = "http://127.0.0.1/index.html",
    ["Cookie"] = "session=6f1c2a9e" .. counter .. "; theme=dark",
    ["Upgrade-Insecure-Requests"] = "1",
    ["Sec-Fetch-Mode"] = "navigate",
  })
end

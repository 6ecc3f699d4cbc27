-- wrk script: every request carries a target of its own (/small.txt?n=1, ?n=2, ...),
-- so no proxy can reuse work keyed by a request's bytes.
local counter = 0

request = function()
  counter = counter + 1
  return wrk.format(nil, wrk.path .. "?n=" .. counter)
end

-- wrk script of scripts/bench.sh hotpath: GET /v1/org with one of the keys
-- in $HOTPATH_KEYS (one per line), round robin, and a fresh client address per
-- request (L1 counts per IP). LuaJIT 5.1: no integer division operator.
local keys = {}
local n = 0

function init(args)
  for line in io.lines(os.getenv("HOTPATH_KEYS")) do
    if #line > 0 then table.insert(keys, line) end
  end
  math.randomseed(os.time() + (args[1] and tonumber(args[1]) or 0))
end

function request()
  n = n + 1
  local key = keys[(n % #keys) + 1]
  local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", "/v1/org", { ["Authorization"] = "Bearer " .. key, ["CF-Connecting-IP"] = ip })
end

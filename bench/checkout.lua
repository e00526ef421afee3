-- wrk script: full guest checkouts (create cart, add a line, set the email, check out),
-- one connection per wrk thread so each thread walks the flow request by request.
-- Usage: wrk -t32 -c32 -d10s -s bench/checkout.lua http://127.0.0.1:8080 -- STORE VARIANTS_FILE
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  store = args[1]
  variants = {}
  for line in io.lines(args[2]) do
    if #line > 0 then table.insert(variants, line) end
  end
  step, cart, secret = 0, nil, nil
  orders, refused, errors = 0, 0, 0
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end

local json = "application/json"

function request()
  local base = "/v1/storefront/" .. store .. "/carts"
  if step == 0 then
    return wrk.format("POST", base, {}, "")
  elseif step == 1 then
    local body = '{"variant_id":"' .. variants[math.random(#variants)] .. '","quantity":1}'
    return wrk.format("POST", base .. "/" .. cart .. "/lines", { ["content-type"] = json, ["x-cart-secret"] = secret }, body)
  elseif step == 2 then
    local body = '{"email":"buyer' .. math.random(1000000) .. '@example.com"}'
    return wrk.format("PUT", base .. "/" .. cart .. "/contact", { ["content-type"] = json, ["x-cart-secret"] = secret }, body)
  else
    return wrk.format("POST", base .. "/" .. cart .. "/checkout", { ["x-cart-secret"] = secret }, "")
  end
end

function response(status, headers, body)
  if step == 0 then
    if status ~= 201 then errors = errors + 1; return end
    cart = body:match('"id":"(cart_[0-9a-f]+)"')
    secret = body:match('"secret":"(cs_[0-9a-f]+)"')
    step = 1
  elseif step == 1 or step == 2 then
    if status >= 400 then errors = errors + 1; step = 0; return end
    step = step + 1
  else
    if status == 201 then orders = orders + 1 elseif status == 409 then refused = refused + 1 else errors = errors + 1 end
    step = 0
  end
end

function done(summary, latency, requests)
  local o, r, e = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("orders"); r = r + t:get("refused"); e = e + t:get("errors")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("checkouts: %d orders in %.1f s = %.0f orders/s (%d refused, %d errors); %.0f requests/s\n",
    o, seconds, o / seconds, r, e, summary.requests / seconds))
end

-- mock_offers.lua: wrk script for the mock marketplace's ceiling (bench/mock_ceiling.sh).
-- Every request is what demper sends to read a product's offers: a POST to the offers endpoint with the
-- usual JSON body and headers, for a product picked at random among the mock's synthetic products, so the
-- mock renders a different book each time rather than one page over and over.
-- The requests are formatted once in init() and then cycled: building each one in Lua made wrk itself
-- the bottleneck on a two-core machine.
--
-- Environment: MOCK_PRODUCTS (default 10000000) = the mock's --synthetic N;
--              MOCK_DISTINCT (default 20000) = how many different products each wrk thread asks for.

local products = tonumber(os.getenv("MOCK_PRODUCTS") or "10000000")
local distinct = tonumber(os.getenv("MOCK_DISTINCT") or "20000")
local city = "750000000"
local requests = {}
local next_index = 1

function setup(thread)
    thread:set("seed", math.random(1, 1000000))
end

local function offers_request(id)
    local body = '{"cityId":"' .. city .. '","id":"' .. id .. '","merchantUID":[],"limit":64,"page":0,' ..
                 '"sortOption":"PRICE","highRating":null,"searchText":null,' ..
                 '"isExcellentMerchant":false,"installationId":"-1"}'
    local headers = {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json, text/*",
        ["X-KS-City"] = city,
    }
    return wrk.format("POST", "/yml/offer-view/offers/" .. id, headers, body)
end

function init(args)
    math.randomseed(seed or os.time())
    for i = 1, distinct do
        requests[i] = offers_request(math.random(1, products))
    end
end

function request()
    local r = requests[next_index]
    next_index = next_index % distinct + 1
    return r
end

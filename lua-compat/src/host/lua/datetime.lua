-- util.datetime for lilt (XEP-0082 profiles), in UTC.
local os_date, floor, tonumber = os.date, math.floor, tonumber;

local _M = {};

function _M.date(t) return os_date("!%Y-%m-%d", t and floor(t)); end
function _M.datetime(t)
	if t == nil or t % 1 == 0 then return os_date("!%Y-%m-%dT%H:%M:%SZ", t and floor(t)); end
	return os_date("!%Y-%m-%dT%H:%M:%S", floor(t)) .. ("%.6f"):format(t % 1):sub(2) .. "Z";
end
function _M.time(t) return os_date("!%H:%M:%S", t and floor(t)); end
function _M.legacy(t) return os_date("!%Y%m%dT%H:%M:%S", t and floor(t)); end

-- Days since 1970-01-01 of a civil date (proleptic Gregorian).
local function days_from_civil(y, m, d)
	if m <= 2 then y = y - 1; end
	local era = floor(y / 400);
	local yoe = y - era * 400;
	local mp = (m + 9) % 12;
	local doy = floor((153 * mp + 2) / 5) + d - 1;
	local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy;
	return era * 146097 + doe - 719468;
end

function _M.parse(s)
	if type(s) ~= "string" then return nil; end
	local year, month, day, hour, min, sec, rest =
		s:match("^(%d%d%d%d)%-?(%d%d)%-?(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$");
	if not year then return nil; end
	local frac, tz = rest:match("^(%.?%d*)(.*)$");
	local t = days_from_civil(tonumber(year), tonumber(month), tonumber(day)) * 86400
		+ tonumber(hour) * 3600 + tonumber(min) * 60 + tonumber(sec);
	if frac and #frac > 1 then t = t + tonumber("0" .. frac); end
	if tz == "" or tz == "Z" then return t; end
	local sign, oh, om = tz:match("^([+-])(%d%d):?(%d%d)$");
	if not sign then return nil; end
	local offset = tonumber(oh) * 3600 + tonumber(om) * 60;
	if sign == "+" then return t - offset; end
	return t + offset;
end

return _M;

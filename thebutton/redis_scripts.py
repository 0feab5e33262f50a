"""The Lua scripts of the Redis store: each write is one of them, run atomically by Redis.

Every script reads the state, changes it, appends to the press log, keeps the rounds,
bumps the version and PUBLISHes the change in one step (see redis_store.py for the keys
and how the store calls them). Kept apart from the client so that each can be read alone.
"""

# Shared by every script. KEYS[1] = P:state, KEYS[2] = P:presses, KEYS[3] = P:rounds.
# ARGV[1] = the seed, JSON: {"goal": the goal of an empty key} and, from a server that has
# seen the shared state, "known": the newest state it knows {"count", "goal", "presses",
# "version", "epoch", "title"?}; ARGV[2] = now (ISO, UTC), ARGV[3] = a fresh epoch,
# ARGV[4] = the channel, ARGV[5] = the operation id "<server id>:<n>".
LUA_PRELUDE = r"""
local state_key, presses_key, rounds_key = KEYS[1], KEYS[2], KEYS[3]
local at, channel, op = ARGV[2], ARGV[4], ARGV[5]
local restored = false
local function get(field) return tonumber(redis.call('HGET', state_key, field)) end
local function round_put(id, r) redis.call('HSET', rounds_key, id, cjson.encode(r)) end
local function round_get(id)
  local r = redis.call('HGET', rounds_key, id)
  if r then return cjson.decode(r) end
  return nil
end
local function start_round(goal)
  local id = redis.call('HINCRBY', state_key, 'last_round', 1)
  round_put(id, {started = at, goal = goal, presses = 0, reached = false})
  return id
end
-- The hash of one leaderboard's tally, beside P:state (scripts run on one Redis, not a cluster).
local function board_key(scope) return string.sub(state_key, 1, -7) .. ':lb:' .. scope end
-- The newest round's top 3 as {{by, presses}, ...}: most presses first, then the earlier latest press.
local function top3()
  local flat = redis.call('HGETALL', board_key('round:' .. (get('last_round') or 0)))
  local h, rows = {}, {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  for field, value in pairs(h) do
    if string.sub(field, 1, 2) == 'n:' then
      local key = string.sub(field, 3)
      rows[#rows + 1] = {h['name:' .. key], tonumber(value), tonumber(h['last:' .. key])}
    end
  end
  table.sort(rows, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    return a[3] < b[3]
  end)
  local top = {}
  for i = 1, math.min(3, #rows) do top[i] = {rows[i][1], rows[i][2]} end
  return top
end
local function current()
  local s = redis.call('HMGET', state_key, 'count', 'goal', 'presses', 'title', 'version', 'epoch')
  local state = {count = tonumber(s[1]), goal = tonumber(s[2]), presses = tonumber(s[3])}
  local top = top3()
  if #top > 0 then state.leaders = top end
  if s[4] then state.title = s[4] end
  local reply = {state = state, version = tonumber(s[5]), epoch = s[6]}
  if restored then reply.restored = true end
  return reply
end
-- A set of count or goal, or a new round: the open round ends not reached, the next starts.
local function next_round(count, goal)
  local last = get('last_round')
  local r = round_get(last)
  if r and r.ended == nil then
    r.ended = at
    r.reached = false
    round_put(last, r)
  end
  start_round(goal)
  redis.call('HSET', state_key, 'count', count, 'goal', goal)
end
local function publish(event, extra)
  local msg = current()
  msg.event, msg.at, msg.op = event, at, op
  for k, v in pairs(extra or {}) do msg[k] = v end
  local text = cjson.encode(msg)
  redis.call('PUBLISH', channel, text)
  return text
end
local function finish(event, extra)
  redis.call('HINCRBY', state_key, 'version', 1)
  return publish(event, extra)
end
local seed = cjson.decode(ARGV[1])
local known = seed.known
local empty = redis.call('EXISTS', state_key) == 0
if empty then
  -- Ids go on after what is left: eviction takes one key at a time, so a press log or
  -- the rounds may outlive the state.
  local pressed, rounds = redis.call('HLEN', presses_key), redis.call('HLEN', rounds_key)
  redis.call('HSET', state_key, 'count', seed.goal, 'goal', seed.goal, 'presses', 0, 'version', 0,
             'epoch', ARGV[3], 'floor', pressed, 'last_press', pressed, 'last_round', rounds)
  if not known then start_round(seed.goal) end
end
-- The state this server knew is gone (Redis lost it): put it back, never start over. An
-- older one put back by another server (another epoch, a lower version) gives way too:
-- versions go on through a put-back, so the highest is the newest.
if known and (empty or (redis.call('HGET', state_key, 'epoch') ~= known.epoch
                        and get('version') < known.version)) then
  redis.call('HSET', state_key, 'presses', known.presses, 'version', known.version, 'epoch', ARGV[3],
             'floor', get('last_press'))
  if known.title then redis.call('HSET', state_key, 'title', known.title)
  else redis.call('HDEL', state_key, 'title') end
  next_round(known.count, known.goal)
  restored = true
  publish('set')
end
"""

# The state as it is (an empty key starts at the goal, or as the prelude puts it back); writes nothing else.
LUA_READ = LUA_PRELUDE + r"""
return cjson.encode(current())
"""

# KEYS[4] = P:applied:<uuid> (unused without one). ARGV[6] = source, ARGV[7] = note or "",
# ARGV[8] = the press's uuid or "", ARGV[9] = seconds to remember the uuid, ARGV[10] = when
# the button was pressed ("" = now; a press kept in an outbox has its own time in the log),
# ARGV[11] = who made it ("by") or "", ARGV[12] = the name as leaderboards compare it, ARGV[13] = the
# local month of the press ("2026-12"). Each press is counted in the leaderboards' tallies
# (P:lb:all, P:lb:month:<month>, P:lb:round:<id>; a wrap counts in no round), and remembers
# which ones and its name's previous press in each, so that undo (always of the latest) puts
# them back exactly.
# A device's press: ARGV[14] = the device's name key ("" for none), ARGV[15] = its press id or
# "", ARGV[16] = now in Unix seconds, ARGV[17] = presses allowed in ARGV[18] seconds, ARGV[19] =
# seconds a press id is remembered. The device (P:devices, name key -> JSON) must be there; an
# id already seen (P:idem:<device uid>:<id>, a key that expires) answers duplicate; past the
# rate, too_fast with the seconds to wait. All before anything is written.
LUA_PRESS = LUA_PRELUDE + r"""
local source, note, uid = ARGV[6], ARGV[7], ARGV[8]
local by = ARGV[11] or ''
local by_key, month = ARGV[12] or '', ARGV[13] or ''
local device_key, press_id = ARGV[14] or '', ARGV[15] or ''
local pressed_at = at
if ARGV[10] ~= '' then pressed_at = ARGV[10] end
if uid ~= '' and redis.call('EXISTS', KEYS[4]) == 1 then
  local msg = current()
  msg.duplicate = true
  return cjson.encode(msg)
end
local prefix = string.sub(state_key, 1, -7)
local devices_key = prefix .. ':devices'
local dev, idem_key
if device_key ~= '' then
  local raw = redis.call('HGET', devices_key, device_key)
  if not raw then return cjson.encode({unknown_device = true}) end
  dev = cjson.decode(raw)
  if press_id ~= '' then
    idem_key = prefix .. ':idem:' .. dev.uid .. ':' .. press_id
    if redis.call('EXISTS', idem_key) == 1 then
      local msg = current()
      msg.duplicate = true
      return cjson.encode(msg)
    end
  end
  local now, rate, window = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
  local recent = {}
  for _, t in ipairs(dev.recent or {}) do
    if t > now - window then recent[#recent + 1] = t end
  end
  if #recent >= rate then
    return cjson.encode({too_fast = math.max(1, math.ceil(recent[1] + window - now))})
  end
  recent[#recent + 1] = now
  dev.recent, dev.presses, dev.last_seen = recent, (dev.presses or 0) + 1, at
end
local count, goal = get('count'), get('goal')
local after, round_id
if count <= 0 then
  -- The wrap: this press starts the next round and counts in none.
  after = goal
  round_id = start_round(goal)
else
  after = count - 1
  round_id = get('last_round')
  local r = round_get(round_id)
  if r == nil or r.ended ~= nil then
    round_id = start_round(goal)
    r = round_get(round_id)
  end
  r.presses = r.presses + 1
  if after == 0 then
    r.ended = at
    r.reached = true
  end
  round_put(round_id, r)
end
redis.call('HSET', state_key, 'count', after)
redis.call('HINCRBY', state_key, 'presses', 1)
local id = redis.call('HINCRBY', state_key, 'last_press', 1)
local p = {at = pressed_at, source = source, before = count, after = after, round = round_id, undone = false}
if note ~= '' then p.note = note end
if by ~= '' then p.by = by end
local scopes = {'all'}
if month ~= '' then scopes[#scopes + 1] = 'month:' .. month end
if count > 0 then scopes[#scopes + 1] = 'round:' .. round_id end
p.scopes = scopes
if by ~= '' then p.by_key = by_key end
for _, scope in ipairs(scopes) do
  local lb = board_key(scope)
  redis.call('HINCRBY', lb, 'total', 1)
  if by ~= '' then
    redis.call('HINCRBY', lb, 'n:' .. by_key, 1)
    p['prev:' .. scope] = tonumber(redis.call('HGET', lb, 'last:' .. by_key) or 0)
    redis.call('HSET', lb, 'last:' .. by_key, id, 'name:' .. by_key, by)
  end
end
if dev then p.device = dev.name end
redis.call('HSET', presses_key, id, cjson.encode(p))
if uid ~= '' then redis.call('SET', KEYS[4], id, 'EX', tonumber(ARGV[9])) end
local extra = {source = source}
if note ~= '' then extra.note = note end
if by ~= '' then extra.by = by end
if dev then
  redis.call('HSET', devices_key, device_key, cjson.encode(dev))
  if idem_key then redis.call('SET', idem_key, id, 'EX', tonumber(ARGV[19])) end
  extra.device = dev.name
end
return finish('press', extra)
"""

# Devices, apart from the count (no prelude): KEYS[1] = P:devices (name key -> JSON {"name",
# "kind", "by", "created", "last_seen", "presses", "hash", "uid", "recent"}), KEYS[2] =
# P:device_secrets (the sha256 of a secret -> name key). ARGV[1] = the name key.
# ARGV[2] = the new device's JSON, ARGV[3] = its secret's hash. The device gets "seq", the order
# of adding (a counter in KEYS[2] under "#seq", never a sha256), as SQLite's row id gives it.
LUA_DEVICE_ADD = r"""
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'exists' end
local device = cjson.decode(ARGV[2])
device.seq = redis.call('HINCRBY', KEYS[2], '#seq', 1)
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(device))
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
return 'ok'
"""

# Its press ids expire by themselves; a new device of the same name has another uid.
LUA_DEVICE_REMOVE = r"""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'unknown' end
redis.call('HDEL', KEYS[2], cjson.decode(raw).hash)
redis.call('HDEL', KEYS[1], ARGV[1])
return 'ok'
"""

# ARGV[1] = a secret's hash: the device's JSON, or false.
LUA_DEVICE_FIND = r"""
local key = redis.call('HGET', KEYS[2], ARGV[1])
if not key then return false end
return redis.call('HGET', KEYS[1], key)
"""

LUA_UNDO = LUA_PRELUDE + r"""
local floor, id = get('floor'), get('last_press')
local p
while id > floor do
  p = cjson.decode(redis.call('HGET', presses_key, id))
  if not p.undone then break end
  id = id - 1
end
if id <= floor then return cjson.encode({nothing = true}) end
local r = round_get(p.round)
if p.before == 0 then
  -- The wrap started this round, the newest: it goes, and the one before is the newest again.
  redis.call('HDEL', rounds_key, p.round)
  redis.call('HINCRBY', state_key, 'last_round', -1)
elseif r then
  r.presses = r.presses - 1
  if p.after == 0 then
    r.ended = nil
    r.reached = false
  end
  round_put(p.round, r)
end
for _, scope in ipairs(p.scopes or {}) do
  local lb = board_key(scope)
  redis.call('HINCRBY', lb, 'total', -1)
  if p.by_key then
    if redis.call('HINCRBY', lb, 'n:' .. p.by_key, -1) <= 0 then
      redis.call('HDEL', lb, 'n:' .. p.by_key, 'last:' .. p.by_key, 'name:' .. p.by_key)
    else
      redis.call('HSET', lb, 'last:' .. p.by_key, p['prev:' .. scope])
    end
  end
end
p.undone = true
p.undone_at = at
redis.call('HSET', presses_key, id, cjson.encode(p))
redis.call('HSET', state_key, 'count', math.min(p.before, get('goal')))
redis.call('HINCRBY', state_key, 'presses', -1)
return finish('undo')
"""

# ARGV[6] = count or "", ARGV[7] = goal or "", ARGV[8] = "keep", "clear" or "set", ARGV[9] = title.
LUA_SET = LUA_PRELUDE + r"""
local old_count, old_goal = get('count'), get('goal')
local goal = old_goal
if ARGV[7] ~= '' then goal = tonumber(ARGV[7]) end
local count = math.min(old_count, goal)
if ARGV[6] ~= '' then
  count = tonumber(ARGV[6])
  if count > goal then return cjson.encode({too_big = true, goal = goal}) end
end
if count ~= old_count or goal ~= old_goal then
  next_round(count, goal)
  redis.call('HSET', state_key, 'floor', get('last_press'))
end
if ARGV[8] == 'clear' then redis.call('HDEL', state_key, 'title') end
if ARGV[8] == 'set' then redis.call('HSET', state_key, 'title', ARGV[9]) end
return finish('set')
"""

# ARGV[6] = since, ARGV[7] = until (ISO, UTC, milliseconds) or "": compared as text, as every
# stored time is. A newest round after until began "in the future" and does not count.
LUA_ROUND = LUA_PRELUDE + r"""
if ARGV[6] ~= '' then
  local r = round_get(get('last_round'))
  if r and r.started >= ARGV[6] and (ARGV[7] == '' or r.started <= ARGV[7]) then
    return cjson.encode({nothing = true})
  end
end
local goal = get('goal')
next_round(goal, goal)
redis.call('HSET', state_key, 'floor', get('last_press'))
return finish('round')
"""

# ARGV[6] = below this press id ("" = all), ARGV[7] = at most this many. Newest first: id, JSON, id, ...
LUA_HISTORY = LUA_PRELUDE + r"""
local top = get('last_press')
if ARGV[6] ~= '' then top = math.min(top, tonumber(ARGV[6]) - 1) end
local out = {}
local id = top
while id >= 1 and id > top - tonumber(ARGV[7]) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', presses_key, id)
  id = id - 1
end
return out
"""

# ARGV[6] = at most this many. Newest first.
LUA_ROUNDS = LUA_PRELUDE + r"""
local out = {}
local id = get('last_round')
while id >= 1 and #out < tonumber(ARGV[6]) do
  local r = redis.call('HGET', rounds_key, id)
  if r then out[#out + 1] = r end
  id = id - 1
end
return out
"""

# ARGV[6] = the tally: "round" (the newest round's), "month:<YYYY-MM>" or "all". Most presses
# first, between equals the earlier latest press. unattributed: the presses counted there
# (the round's, the month's tally, or all kept presses) less the named ones.
LUA_LEADERS = LUA_PRELUDE + r"""
local scope = ARGV[6]
local since = false
local total
if scope == 'round' then
  local rid = get('last_round') or 0
  scope = 'round:' .. rid
  local r = round_get(rid)
  if r then since, total = r.started, r.presses end
end
local flat = redis.call('HGETALL', board_key(scope))
local h = {}
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
if scope == 'all' then total = get('presses') or 0 end
total = total or tonumber(h.total or 0)
local leaders, named = {}, 0
for field, value in pairs(h) do
  if string.sub(field, 1, 2) == 'n:' then
    local key = string.sub(field, 3)
    local last = tonumber(h['last:' .. key])
    local p = cjson.decode(redis.call('HGET', presses_key, last))
    leaders[#leaders + 1] = {by = h['name:' .. key], presses = tonumber(value), last = p.at, id = last}
    named = named + tonumber(value)
  end
end
table.sort(leaders, function(a, b)
  if a.presses ~= b.presses then return a.presses > b.presses end
  return a.id < b.id
end)
for _, l in ipairs(leaders) do l.id = nil end
return cjson.encode({leaders = leaders, unattributed = total - named, since = since})
"""

set -u
murmur="$1"
mount -t tmpfs -o size=2m tmpfs db || { echo "cannot mount a tmpfs"; exit 99; }
"$murmur" token create --name t --db db/murmur.db >token 2>/dev/null || { echo "no token"; exit 98; }
"$murmur" serve --bind 127.0.0.1:0 --db db/murmur.db --log-format json 2>serve.log &
server=$!
python3 - "$(cat token)" "$server" <<'PY'
import json, sys, time, urllib.request, subprocess
token, server = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
def lines():
    return [json.loads(line) for line in open('serve.log') if line.strip()]
def wait_for(what, found):
    while time.monotonic() < deadline:
        hit = [l for l in lines() if found(l)]
        if hit:
            return hit[0]
        time.sleep(0.05)
    print('timeout waiting for ' + what); sys.exit(97)
listening = wait_for('the address', lambda l: 'listening on' in l.get('message', ''))
address = listening['message'].split('http://')[1]
def call(method, path, body=None):
    request = urllib.request.Request('http://' + address + path, method=method, data=body,
        headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)
run = call('POST', '/v1/flights/chatty/runs', b'{}')['run_id']
failed = wait_for('a retry', lambda l: l.get('message', '').startswith('driving the run failed on the store'))
print('retried=' + str(failed.get('run') == run))
subprocess.run(['mount', '-o', 'remount,size=64m', 'db'], check=True)
while time.monotonic() < deadline:
    status = call('GET', '/v1/runs/' + run)['status']
    if status in ('completed', 'failed', 'canceled'):
        break
    time.sleep(0.05)
print('final=' + status)
PY
echo "script=$?"
kill "$server"

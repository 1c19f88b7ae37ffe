import { NetHost } from '../net/harness.ts';
const A = { mac: '00:16:3e:00:0b:0a', ip: '10.0.11.10' };
const B = { mac: '00:16:3e:00:0b:0b', ip: '10.0.11.11' };
const size = Number(process.argv[2] ?? 1472);
const count = Number(process.argv[3] ?? 60000);
const h = await NetHost.boot({ memoryMiB: 256 });
for (let i = 0; i < 2; i++) {
  const recv = await h.start({ vif: B, tasks: [{ kind: 'stream-recv', port: 5001 }] });
  const send = await h.start({ vif: A, tasks: [{ kind: 'ping', target: B.ip, count: 1 }, { kind: 'barrier', name: 'go' }, { kind: 'stream-send', target: B.ip, port: 5001, size, count }] });
  await recv.note('listen:5001');
  await send.note('barrier:go');
  const before = h.allCounters();
  await send.go('go');
  const [so, ro] = await Promise.all([send.outcome, recv.outcome]);
  const after = h.allCounters();
  const vs = await h.ask({ kind: 'vif-stats' }, 'vif-stats-reply');
  console.log(JSON.stringify(so.tasks[2].result));
  console.log('hv', JSON.stringify(Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v !== 0))));
  console.log('sendfront', JSON.stringify(so.front), 'recvfront', JSON.stringify(ro.front));
  for (const [p, s] of Object.entries(vs.stats)) console.log(p, JSON.stringify(s));
}
await h.close();

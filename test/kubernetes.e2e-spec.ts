import { PATH_METADATA } from '@nestjs/common/constants';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { Environment, validateEnvironment } from '../src/config/environment';
import { HealthController } from '../src/health/health.controller';
import { PROJECT_ROOT } from './support/litellm';

/**
 * No cluster runs here, so deploy/kubernetes is checked offline: rendered by `kubectl kustomize`,
 * every object validated against the Kubernetes JSON schemas in strict mode (unknown fields are errors),
 * and the probes, ports, keys and shutdown timings held to the gateway's own configuration.
 * Both tools come from .tools/k8s-tools-venv (scripts/ensure-k8s-tools.sh, run by `npm test` first).
 */
const BASE = join(PROJECT_ROOT, 'deploy', 'kubernetes');
const TOOLS = join(PROJECT_ROOT, '.tools', 'k8s-tools-venv', 'bin');
const KUBECTL = join(TOOLS, 'kubectl');
const KUBERNETES_VALIDATE = join(TOOLS, 'kubernetes-validate');
/** 1.29: native sidecars are on by default from there. 1.37: the newest schemas kubernetes-validate ships. */
const KUBERNETES_VERSIONS = ['1.29.0', '1.37.0'];
const SECRET_NAME = 'llm-gateway-secrets';
/** Time allowed, past every bound the gateway enforces itself, to close the database and exit. */
const SHUTDOWN_MARGIN_SECONDS = 5;

interface Probe {
  httpGet?: { path: string; port: number | string };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  restartPolicy?: string;
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: unknown[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number }; exec?: unknown; httpGet?: unknown } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } };
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string }; emptyDir?: object }[];
}
// The rendered objects, loosely typed: the schema validation below is what checks their shape.
type KubernetesObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string> };

function requireTools(): void {
  for (const tool of [KUBECTL, KUBERNETES_VALIDATE]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: run \`bash scripts/ensure-k8s-tools.sh\` (npm test does it first).`);
  }
}

function render(): string {
  return execFileSync(KUBECTL, ['kustomize', BASE], { encoding: 'utf8' });
}

/** kubernetes-validate in strict mode; `passed` lists the objects it accepted, one `kind/name` each. */
function validate(manifests: string, kubernetesVersion: string): { ok: boolean; passed: string[]; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-validate-'));
  try {
    const file = join(dir, 'manifests.yaml');
    writeFileSync(file, manifests);
    const run = spawnSync(KUBERNETES_VALIDATE, ['--strict', '--kubernetes-version', kubernetesVersion, file], { encoding: 'utf8' });
    const output = `${run.stdout}${run.stderr}`;
    const passed = [...output.matchAll(/passed for resource (\S+) against/g)].map((match) => match[1]);
    // A kind it has no schema for is only a warning there; here it is a failure.
    return { ok: run.status === 0 && !/^(ERROR|WARN)/m.test(output), passed, output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const secondsOf = (milliseconds: number) => milliseconds / 1000;

describe('Kubernetes deployment (deploy/kubernetes)', () => {
  let rendered: string;
  let objects: KubernetesObject[];
  let pod: PodSpec;
  let gateway: Container;
  let litellm: Container;
  /** The gateway's configuration as the Deployment sets it, secrets filled with stand-ins, defaults applied. */
  let settings: Environment;

  const find = (kind: string) => {
    const found = objects.filter((object) => object.kind === kind);
    expect(found).toHaveLength(1);
    return found[0];
  };
  const envOf = (container: Container) => new Map((container.env ?? []).map((variable) => [variable.name, variable]));
  const portOf = (container: Container, port: number | string) =>
    typeof port === 'number' ? port : container.ports?.find((candidate) => candidate.name === port)?.containerPort;

  beforeAll(() => {
    requireTools();
    rendered = render();
    objects = parseAllDocuments(rendered).map((document) => document.toJS() as KubernetesObject);
    const deployment = find('Deployment');
    pod = deployment.spec.template.spec;
    gateway = pod.containers.find((container) => container.name === 'gateway')!;
    litellm = (pod.initContainers ?? []).find((container) => container.name === 'litellm')!;

    const standIns: Record<string, string> = {
      LITELLM_MASTER_KEY: 'sk-kubernetes-test',
      GATEWAY_API_KEYS: 'kubernetes-caller-key-0123456789',
      DATABASE_URL: 'postgres://gateway:secret@postgres:5432/gateway',
    };
    const environment = Object.fromEntries(
      [...envOf(gateway).values()].map((variable) => [
        variable.name,
        variable.value ?? standIns[variable.valueFrom?.secretKeyRef?.key ?? ''] ?? '',
      ]),
    );
    settings = validateEnvironment(environment);
  });

  it('renders a Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy and the LiteLLM ConfigMap, and no Secret', () => {
    expect(objects.map((object) => `${object.apiVersion} ${object.kind}`).sort()).toEqual([
      'apps/v1 Deployment',
      'autoscaling/v2 HorizontalPodAutoscaler',
      'networking.k8s.io/v1 NetworkPolicy',
      'policy/v1 PodDisruptionBudget',
      'v1 ConfigMap',
      'v1 Service',
    ]);
    for (const object of objects) {
      expect([object.kind, object.metadata.namespace]).toEqual([object.kind, 'llm-gateway']);
      expect([object.kind, object.metadata.labels?.['app.kubernetes.io/part-of']]).toEqual([object.kind, 'llm-gateway']);
    }
  });

  it.each(KUBERNETES_VERSIONS)('validates every object against the strict Kubernetes %s schemas', (version) => {
    const result = validate(rendered, version);
    expect(result.output).not.toMatch(/^(ERROR|WARN)/m);
    expect(result.ok).toBe(true);
    expect(result.passed.sort()).toEqual(objects.map((object) => `${object.kind.toLowerCase()}/${object.metadata.name}`).sort());
  });

  it('rejects broken objects: a string where an integer belongs, a misspelt field, a native sidecar before Kubernetes 1.28', () => {
    const deployment = find('Deployment');
    const withStringGrace = structuredClone(deployment);
    withStringGrace.spec.template.spec.terminationGracePeriodSeconds = '75';
    const withTypo = structuredClone(deployment);
    withTypo.spec.template.spec.containers[0].readinesProbe = withTypo.spec.template.spec.containers[0].readinessProbe;

    const stringGrace = validate(stringify(withStringGrace), '1.37.0');
    expect(stringGrace.ok).toBe(false);
    expect(stringGrace.output).toMatch(/terminationGracePeriodSeconds: '75' is not of type 'integer'/);
    const typo = validate(stringify(withTypo), '1.37.0');
    expect(typo.ok).toBe(false);
    expect(typo.output).toMatch(/'readinesProbe' was unexpected/);
    const beforeSidecars = validate(stringify(deployment), '1.27.0');
    expect(beforeSidecars.ok).toBe(false);
    expect(beforeSidecars.output).toMatch(/'restartPolicy' was unexpected/);
    expect(validate('apiVersion: example.com/v1\nkind: Unknown\nmetadata:\n  name: x\n', '1.37.0').ok).toBe(false);
  });

  it('gives the gateway a production configuration its own schema accepts, LiteLLM on localhost', () => {
    const known = Object.keys(new Environment());
    // NODE_OPTIONS is Node's.
    const extras = ['NODE_OPTIONS'];
    expect([...envOf(gateway).keys()].filter((name) => !known.includes(name) && !extras.includes(name))).toEqual([]);
    expect(gateway.envFrom).toBeUndefined();
    expect(settings.NODE_ENV).toBe('production');
    expect(settings.HEALTH_READY_INCLUDE_LITELLM).toBe(true); // a sidecar: its outage is this pod's
    // The image built from the Dockerfile, tagged with the package's version (an overlay sets the registry).
    const version = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).version;
    expect(gateway.image).toBe(`llm-gateway:${version}`);

    const litellmPort = Number(litellm.args![litellm.args!.indexOf('--port') + 1]);
    expect(settings.LITELLM_URL).toBe(`http://127.0.0.1:${litellmPort}`);
    expect(litellm.ports).toEqual([expect.objectContaining({ containerPort: litellmPort })]);
  });

  it('probes the gateway on its port: liveness /health/live, readiness /health/ready, paths the HealthController serves', () => {
    const base = Reflect.getMetadata(PATH_METADATA, HealthController);
    const route = (method: keyof HealthController) => `/${base}/${Reflect.getMetadata(PATH_METADATA, HealthController.prototype[method])}`;
    expect(route('live')).toBe('/health/live');
    expect(route('ready')).toBe('/health/ready');

    expect(gateway.ports).toEqual([expect.objectContaining({ containerPort: settings.PORT })]);
    expect(gateway.livenessProbe?.httpGet?.path).toBe(route('live'));
    expect(gateway.startupProbe?.httpGet?.path).toBe(route('live'));
    expect(gateway.readinessProbe?.httpGet?.path).toBe(route('ready'));
    for (const probe of [gateway.startupProbe, gateway.livenessProbe, gateway.readinessProbe]) {
      expect(portOf(gateway, probe!.httpGet!.port)).toBe(settings.PORT);
    }
    // A readiness check waits up to HEALTH_CHECK_TIMEOUT_MS for its dependencies; the probe waits longer.
    expect(gateway.readinessProbe!.timeoutSeconds!).toBeGreaterThan(secondsOf(settings.HEALTH_CHECK_TIMEOUT_MS));

    const service = find('Service');
    expect(service.spec.selector).toEqual(find('Deployment').spec.selector.matchLabels);
    expect(service.spec.ports).toHaveLength(1);
    expect(portOf(gateway, service.spec.ports[0].targetPort)).toBe(settings.PORT);
  });

  it('runs LiteLLM as a native sidecar of the pinned version, with the shipped config and a liveness startupProbe', () => {
    const pinned = /litellm\[proxy\]==([\d.]+)/.exec(readFileSync(join(PROJECT_ROOT, 'litellm-requirements.txt'), 'utf8'))![1];
    expect(litellm.image).toBe(`ghcr.io/berriai/litellm:v${pinned}`);
    // An init container with restartPolicy Always: started before the gateway, stopped after it.
    expect(litellm.restartPolicy).toBe('Always');
    expect(pod.containers.map((container) => container.name)).toEqual(['gateway']);
    const litellmPort = litellm.ports![0].containerPort;
    for (const probe of [litellm.startupProbe, litellm.livenessProbe]) {
      expect(probe?.httpGet?.path).toBe('/health/liveliness'); // never /health: it calls every model
      expect(portOf(litellm, probe!.httpGet!.port)).toBe(litellmPort);
    }

    // --config names the file of the generated ConfigMap, which is the repository's litellm-config.yaml.
    const configPath = litellm.args![litellm.args!.indexOf('--config') + 1];
    const mount = litellm.volumeMounts!.find((candidate) => configPath.startsWith(`${candidate.mountPath}/`))!;
    const volume = pod.volumes!.find((candidate) => candidate.name === mount.name)!;
    const configMap = objects.find((object) => object.kind === 'ConfigMap' && object.metadata.name === volume.configMap?.name)!;
    expect(configMap.metadata.name).toMatch(/^litellm-config-[a-z0-9]+$/); // hashed: a change rolls the pods
    expect(configMap.data![configPath.slice(mount.mountPath.length + 1)]).toBe(readFileSync(join(PROJECT_ROOT, 'litellm-config.yaml'), 'utf8'));
  });

  it('runs LiteLLM as docker-compose.yml does (README, "Capacity planning"): the same flags and LITELLM_LOG, a worker per core of its CPU limit', () => {
    const compose = parse(readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8')).services.litellm;
    const flags = (args: string[]) => {
      const pairs: Record<string, string> = {};
      for (let i = 0; i < args.length; i += 2) if (!['--config', '--port'].includes(args[i])) pairs[args[i]] = args[i + 1];
      return pairs;
    };
    const composeFlags = flags(compose.command.map((arg: string) => arg.replace(/^\$\{\w+:-([^}]*)\}$/, '$1')));
    expect(flags(litellm.args!)).toEqual(composeFlags);
    expect(envOf(litellm).get('LITELLM_LOG')?.value).toBe(compose.environment.LITELLM_LOG);
    // Idle connections: LiteLLM keeps them longer than the gateway does, so the gateway closes first.
    const gatewayKeepAliveMs = Number(envOf(gateway).get('LITELLM_KEEP_ALIVE_TIMEOUT_MS')?.value ?? validateEnvironment({}).LITELLM_KEEP_ALIVE_TIMEOUT_MS);
    expect(Number(composeFlags['--keepalive_timeout']) * 1000).toBeGreaterThan(gatewayKeepAliveMs);
    expect(Number(litellm.resources!.limits!.cpu)).toBe(Number(composeFlags['--num_workers']));
  });

  it('takes keys from the Secret alone: the master key shared, the caller keys and DATABASE_URL never given to LiteLLM', () => {
    const references = [gateway, litellm].flatMap((container) =>
      (container.env ?? []).flatMap((variable) => variable.valueFrom?.secretKeyRef ?? []),
    );
    expect(new Set(references.map((reference) => reference.name))).toEqual(new Set([SECRET_NAME]));

    // The gateway presents the key LiteLLM accepts.
    expect(envOf(gateway).get('LITELLM_API_KEY')?.valueFrom?.secretKeyRef?.key).toBe('LITELLM_MASTER_KEY');
    expect(envOf(litellm).get('LITELLM_MASTER_KEY')?.valueFrom?.secretKeyRef?.key).toBe('LITELLM_MASTER_KEY');
    expect([...envOf(litellm).keys()].sort()).toEqual(['ANTHROPIC_API_KEY', 'LITELLM_LOCAL_MODEL_COST_MAP', 'LITELLM_LOG', 'LITELLM_MASTER_KEY', 'OPENAI_API_KEY']);
    expect(litellm.envFrom).toBeUndefined();
    // Required: without them the gateway refuses to start (keys) or would reach for an embedded database on a read-only filesystem.
    for (const name of ['LITELLM_API_KEY', 'GATEWAY_API_KEYS', 'DATABASE_URL']) {
      expect([name, envOf(gateway).get(name)?.valueFrom?.secretKeyRef?.optional]).toEqual([name, undefined]);
    }

    // secrets.env.example lists exactly the keys read, and no value.
    const example = readFileSync(join(BASE, 'secrets.env.example'), 'utf8');
    const listed = [...example.matchAll(/^([A-Z_]+)=(.*)$/gm)];
    expect(listed.map((line) => line[2])).toEqual(listed.map(() => ''));
    expect(listed.map((line) => line[1]).sort()).toEqual([...new Set(references.map((reference) => reference.key))].sort());
  });

  it('gives the shutdown sequence time to finish: grace period past drain + in-flight work, readiness lost within the drain', () => {
    const grace = pod.terminationGracePeriodSeconds!;
    // A preStop hook runs before SIGTERM, so it adds to the gateway's own sequence. The gateway drains
    // itself, so there is none; if one is added, the grace period must cover it too.
    const preStopSeconds = gateway.lifecycle?.preStop?.sleep?.seconds ?? 0;
    expect(gateway.lifecycle?.preStop).toBeUndefined();
    // After the drain: streams are ended at SHUTDOWN_STREAM_TIMEOUT_MS; a non-streamed call accepted at the
    // end of the drain may take up to LLM_TIMEOUT_MS to be answered.
    const inFlightSeconds = secondsOf(Math.max(settings.SHUTDOWN_STREAM_TIMEOUT_MS, settings.LLM_TIMEOUT_MS));
    expect(grace).toBeGreaterThanOrEqual(preStopSeconds + secondsOf(settings.SHUTDOWN_DRAIN_MS) + inFlightSeconds + SHUTDOWN_MARGIN_SECONDS);
    expect(grace).toBeGreaterThanOrEqual(secondsOf(settings.SHUTDOWN_DRAIN_MS + settings.SHUTDOWN_STREAM_TIMEOUT_MS) + SHUTDOWN_MARGIN_SECONDS);

    // Readiness turns 503 at SIGTERM; the kubelet sees it within period x failureThreshold, before the
    // gateway stops accepting connections.
    const readiness = gateway.readinessProbe!;
    expect(readiness.periodSeconds! * readiness.failureThreshold!).toBeLessThanOrEqual(secondsOf(settings.SHUTDOWN_DRAIN_MS));
    // Liveness keeps answering while draining (/health/live), so it never restarts a draining pod.
    expect(gateway.livenessProbe?.httpGet?.path).not.toBe(gateway.readinessProbe?.httpGet?.path);
  });

  it('runs unprivileged: non-root, read-only root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp, /tmp as an emptyDir', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.automountServiceAccountToken).toBe(false);
    for (const container of [gateway, litellm]) {
      expect([container.name, container.securityContext]).toEqual([
        container.name,
        expect.objectContaining({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }),
      ]);
      expect(container.securityContext!.runAsUser).toBeGreaterThan(0);
      const tmp = container.volumeMounts!.find((mount) => mount.mountPath === '/tmp')!;
      expect(pod.volumes!.find((volume) => volume.name === tmp.name)?.emptyDir).toBeDefined();
      for (const kind of ['requests', 'limits'] as const) {
        expect([container.name, kind, Object.keys(container.resources?.[kind] ?? {}).sort()]).toEqual([container.name, kind, ['cpu', 'memory']]);
      }
    }
  });

  it('scales on CPU from two replicas, disrupts one pod at a time, and lets in only the gateway port', () => {
    const deployment = find('Deployment');
    const podLabels = deployment.spec.template.metadata.labels;
    const selects = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => podLabels[key] === value);
    expect(deployment.spec.replicas).toBeUndefined(); // the autoscaler owns the count
    expect(deployment.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });

    const autoscaler = find('HorizontalPodAutoscaler');
    expect(autoscaler.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    expect(autoscaler.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(autoscaler.spec.metrics).toEqual([{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: expect.any(Number) } } }]);

    const budget = find('PodDisruptionBudget');
    expect(selects(budget.spec.selector.matchLabels)).toBe(true);
    expect(budget.spec.maxUnavailable).toBe(1);

    const policy = find('NetworkPolicy');
    expect(selects(policy.spec.podSelector.matchLabels)).toBe(true);
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy.spec.ingress).toEqual([{ ports: [{ port: settings.PORT, protocol: 'TCP' }] }]);
    const egressPorts = (policy.spec.egress as { ports: { port: number; protocol: string }[] }[]).flatMap((rule) =>
      rule.ports.map((port) => `${port.port}/${port.protocol}`),
    );
    // DNS, PostgreSQL, Redis, HTTPS.
    expect(egressPorts.sort()).toEqual(['443/TCP', '5432/TCP', '53/TCP', '53/UDP', '6379/TCP'].sort());
    // Providers: public addresses only (not the cluster's, nor the metadata endpoint).
    const https = (policy.spec.egress as { to?: { ipBlock: { cidr: string; except: string[] } }[]; ports: { port: number }[] }[]).find((rule) =>
      rule.ports.some((port) => port.port === 443),
    )!;
    expect(https.to?.find((peer) => peer.ipBlock.cidr === '0.0.0.0/0')?.ipBlock.except).toEqual(
      expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16']),
    );
  });
});

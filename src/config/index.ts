/**
 * The server's configuration: read from the environment (and a few command-line flags) and validated once at
 * start-up with zod. Everything else receives the resulting `Config` object; nothing else reads process.env.
 */
import path from 'node:path';
import { z } from 'zod';

const bool = z
  .union([z.boolean(), z.enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off'])])
  .transform((v) => v === true || v === '1' || v === 'true' || v === 'yes' || v === 'on');

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** The datasets a session can be created for; each is served by one model. */
export const DATASETS = ['iclevr', 'codraw'] as const;
export type Dataset = (typeof DATASETS)[number];

/** The shipped models, one per dataset (the default of `models`). */
export const SHIPPED_MODELS: Record<Dataset, string> = { iclevr: 'models/iclevr-default', codraw: 'models/codraw' };

/** `iclevr=models/a,codraw=models/b` -> { iclevr: 'models/a', codraw: 'models/b' } (validated by the schema). */
function parseModelMap(v: string): unknown {
  const out: Record<string, string> = {};
  for (const part of v.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) return v; // not DATASET=DIR: the schema reports it
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

/**
 * Sampling settings of a turn that sets none, when neither the server's configuration nor the model's checkpoint
 * (`sampling` in its config.json: the settings its model card measured best) gives one: the paper's guidance scales
 * (phi 3, psi 2) with 50 DDIM steps instead of its 250, which a CPU cannot serve interactively.
 */
export const TURN_DEFAULTS = { steps: 50, guidanceScale: 3, icmGuidanceScale: 2, candidates: 1 } as const;

export interface TurnSettings {
  steps: number;
  guidanceScale: number;
  icmGuidanceScale: number;
  /** Best-of-n: samples drawn per turn, the one the model's own ICM score ranks first kept. */
  candidates: number;
}

/**
 * The settings a turn that sets none gets: the server's configuration (DEFAULT_* variables) over the model's
 * recommendation over TURN_DEFAULTS. `npm run eval` resolves its defaults the same way, so its scores are the
 * server's.
 */
export function resolveTurnDefaults(
  config: Pick<Config, 'defaultSteps' | 'defaultGuidanceScale' | 'defaultIcmGuidanceScale' | 'defaultCandidates'> | null,
  recommended: Partial<TurnSettings> = {},
): TurnSettings {
  return {
    steps: config?.defaultSteps ?? recommended.steps ?? TURN_DEFAULTS.steps,
    guidanceScale: config?.defaultGuidanceScale ?? recommended.guidanceScale ?? TURN_DEFAULTS.guidanceScale,
    icmGuidanceScale: config?.defaultIcmGuidanceScale ?? recommended.icmGuidanceScale ?? TURN_DEFAULTS.icmGuidanceScale,
    candidates: config?.defaultCandidates ?? recommended.candidates ?? TURN_DEFAULTS.candidates,
  };
}

/** Limits that protect the server; each violation is a typed GraphQL error (see src/graphql/errors.ts). */
const LimitsSchema = z.object({
  /** Longest turn instruction or chat message, in characters. */
  maxTextLength: int(1, 100_000).default(500),
  /** Longest session title or participant name, in characters. */
  maxNameLength: int(1, 1000).default(80),
  /** Turns QUEUED or RUNNING at once in one session. */
  maxQueuedTurnsPerSession: int(1, 10_000).default(8),
  /** GraphQL operations (queries, mutations, subscribes) per participant token (or per IP when anonymous) per minute. */
  maxOperationsPerMinute: int(1, 1_000_000).default(240),
  /** Deepest selection nesting in a GraphQL document. */
  maxQueryDepth: int(1, 100).default(8),
  /** Largest estimated query cost (1 per field, lists multiplied by their `first`/`last` argument or 20). */
  maxQueryComplexity: int(1, 1_000_000).default(2000),
  /** Largest WebSocket message accepted, in bytes (larger closes the socket with 1009). */
  maxWsPayloadBytes: int(256, 64 * 1024 * 1024).default(64 * 1024),
  /** Largest HTTP request body, in bytes. */
  maxHttpBodyBytes: int(256, 64 * 1024 * 1024).default(256 * 1024),
  /** Most denoising steps a turn may ask for. */
  maxSteps: int(1, 10_000).default(250),
  /** Most best-of-n candidates a turn may ask for (each is a full sample: n times the turn's denoising work). */
  maxCandidates: int(1, 64).default(8),
  /** Largest PNG returned as a data URL, in bytes. */
  maxDataUrlBytes: int(1024, 64 * 1024 * 1024).default(512 * 1024),
  /** Most lexical tokens in a GraphQL document (parsing stops there, before validation can be made slow). */
  maxQueryTokens: int(100, 1_000_000).default(5000),
  /** Most root fields (aliases included) in one operation; each root field of a mutation counts as one operation. */
  maxRootFields: int(1, 1000).default(10),
  /** Largest response body of one operation (HTTP response or graphql-ws message), in bytes. */
  maxResponseBytes: int(1024, 1 << 30).default(8 * 1024 * 1024),
  /** Most pixels (width x height, from the PNG header, checked before decoding) of an uploaded image. */
  maxImagePixels: int(1, 1 << 28).default(2048 * 2048),
});

const ConfigSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: int(0, 65535).default(4000),
  /** Folder for the embedded SQLite database (and anything else the server writes). */
  dataDir: z.string().min(1).default('data'),
  /** `file:...` (SQLite) or `postgres://...`; empty means `file:<dataDir>/codraw.db`. */
  databaseUrl: z.string().default(''),
  /**
   * `redis://...`: scale-out mode. API servers queue turns in Redis (BullMQ) for generation workers
   * (`npm run worker`) and share events through Redis pub/sub; needs a PostgreSQL DATABASE_URL. Empty: one
   * process, the engine in a worker thread.
   */
  redisUrl: z.string().default(''),
  /** Scale-out workers: turn jobs taken at once (default: maxBatchSize). */
  workerConcurrency: int(1, 256).optional(),
  /** Scale-out workers: port of their /metrics and /healthz listener on `host` (0: any free port; unset: none). */
  workerMetricsPort: int(0, 65535).optional(),
  /** Scale-out: a job whose worker stopped renewing its lock for this long goes back to the queue (ms). */
  queueLockMs: int(1000, 600_000).default(10_000),
  /** Scale-out: how often workers look for such jobs (ms). */
  queueStalledCheckMs: int(500, 600_000).default(5_000),
  /**
   * Which model renders each dataset's sessions: dataset -> checkpoint folder (`MODELS=iclevr=DIR,codraw=DIR`).
   * Unset: `modelPath` for every dataset if it is set, else the shipped models (servedModels).
   */
  models: z
    .preprocess((v) => (typeof v === 'string' ? parseModelMap(v) : v), z.partialRecord(z.enum(DATASETS), z.string().min(1)).refine((m) => Object.keys(m).length > 0, 'name at least one DATASET=DIR'))
    .optional(),
  /** One checkpoint folder for every dataset (`MODEL_PATH`, `--model`); `models` wins when both are set. */
  modelPath: z.string().min(1).optional(),
  backend: z.enum(['auto', 'tensorflow', 'native-cpu', 'cpu']).default('auto'),
  /** Send a preview of the predicted x0 every N denoising steps (0: no previews, only the final image). */
  previewEvery: int(0, 10_000).default(5),
  /** Denoise ready turns of different sessions together in one batch. */
  batching: bool.default(true),
  maxBatchSize: int(1, 256).default(8),
  /** Generation defaults for turns that do not set their own; unset: the model's recommendation (resolveTurnDefaults). */
  defaultSteps: int(1, 10_000).optional(),
  defaultGuidanceScale: z.coerce.number().min(0).max(100).optional(),
  defaultIcmGuidanceScale: z.coerce.number().min(0).max(100).optional(),
  defaultCandidates: int(1, 64).optional(),
  /** A socket whose unsent data exceeds this many bytes gets only the latest preview frame. */
  wsHighWaterMarkBytes: int(0, 1 << 30).default(256 * 1024),
  /** How long SIGTERM waits for in-flight work before closing anyway. */
  shutdownTimeoutMs: int(0, 600_000).default(10_000),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
});

export type Config = z.infer<typeof ConfigSchema>;
export type Limits = Config['limits'];
export type ConfigInput = z.input<typeof ConfigSchema>;

/**
 * The model folder of each dataset a session may use: `models` as configured, else `modelPath` for both datasets,
 * else the shipped models. A dataset missing from `models` cannot have sessions on this server.
 */
export function servedModels(config: Pick<Config, 'models' | 'modelPath'>): Partial<Record<Dataset, string>> {
  if (config.models) return config.models;
  if (config.modelPath) return Object.fromEntries(DATASETS.map((d) => [d, config.modelPath!]));
  return { ...SHIPPED_MODELS };
}

/** Where the database lives, resolved from the configuration. */
export type DatabaseTarget = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

export function databaseTarget(config: Config): DatabaseTarget {
  const url = config.databaseUrl;
  if (/^postgres(ql)?:\/\//.test(url)) return { kind: 'postgres', url };
  if (url.startsWith('file:')) return { kind: 'sqlite', file: path.resolve(url.slice('file:'.length)) };
  if (url !== '') throw new ConfigError(`DATABASE_URL must start with file: or postgres://, got "${url}"`);
  return { kind: 'sqlite', file: path.resolve(config.dataDir, 'codraw.db') };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Scale-out mode: Redis is set (API servers and workers share its queue and PostgreSQL). */
export function isScaleOut(config: Pick<Config, 'redisUrl'>): boolean {
  return config.redisUrl !== '';
}

/** Settings that must agree: a malformed DATABASE_URL, or scale-out over a database only one machine sees. */
export function checkDeployment(config: Config): void {
  const db = databaseTarget(config);
  if (isScaleOut(config)) {
    if (!/^rediss?:\/\//.test(config.redisUrl)) throw new ConfigError(`REDIS_URL must start with redis:// or rediss://, got "${config.redisUrl}"`);
    if (db.kind !== 'postgres') throw new ConfigError('REDIS_URL (scale-out mode) needs DATABASE_URL=postgres://...: every API server and worker must share one database');
  }
}

/** Validate a partial configuration object (tests and benches build theirs this way). */
export function makeConfig(input: ConfigInput = {}): Config {
  const r = ConfigSchema.safeParse(input);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return r.data;
}

/** Environment variable -> config path. Unset variables take the defaults above. */
const ENV: Record<string, string> = {
  HOST: 'host',
  PORT: 'port',
  DATA_DIR: 'dataDir',
  DATABASE_URL: 'databaseUrl',
  MODEL_PATH: 'modelPath',
  MODELS: 'models',
  REDIS_URL: 'redisUrl',
  WORKER_CONCURRENCY: 'workerConcurrency',
  WORKER_METRICS_PORT: 'workerMetricsPort',
  QUEUE_LOCK_MS: 'queueLockMs',
  QUEUE_STALLED_CHECK_MS: 'queueStalledCheckMs',
  TENSOR_BACKEND: 'backend',
  PREVIEW_EVERY: 'previewEvery',
  BATCHING: 'batching',
  MAX_BATCH_SIZE: 'maxBatchSize',
  DEFAULT_STEPS: 'defaultSteps',
  DEFAULT_GUIDANCE_SCALE: 'defaultGuidanceScale',
  DEFAULT_ICM_GUIDANCE_SCALE: 'defaultIcmGuidanceScale',
  DEFAULT_CANDIDATES: 'defaultCandidates',
  WS_HIGH_WATER_MARK_BYTES: 'wsHighWaterMarkBytes',
  SHUTDOWN_TIMEOUT_MS: 'shutdownTimeoutMs',
  MAX_TEXT_LENGTH: 'limits.maxTextLength',
  MAX_NAME_LENGTH: 'limits.maxNameLength',
  MAX_QUEUED_TURNS_PER_SESSION: 'limits.maxQueuedTurnsPerSession',
  MAX_OPERATIONS_PER_MINUTE: 'limits.maxOperationsPerMinute',
  MAX_QUERY_DEPTH: 'limits.maxQueryDepth',
  MAX_QUERY_COMPLEXITY: 'limits.maxQueryComplexity',
  MAX_WS_PAYLOAD_BYTES: 'limits.maxWsPayloadBytes',
  MAX_HTTP_BODY_BYTES: 'limits.maxHttpBodyBytes',
  MAX_CANDIDATES: 'limits.maxCandidates',
  MAX_STEPS: 'limits.maxSteps',
  MAX_DATA_URL_BYTES: 'limits.maxDataUrlBytes',
  MAX_QUERY_TOKENS: 'limits.maxQueryTokens',
  MAX_ROOT_FIELDS: 'limits.maxRootFields',
  MAX_RESPONSE_BYTES: 'limits.maxResponseBytes',
  MAX_IMAGE_PIXELS: 'limits.maxImagePixels',
};

/** Command-line flags (`--port 4000` or `--port=4000`) -> config path; they override the environment. */
const FLAGS: Record<string, string> = {
  '--host': 'host',
  '--port': 'port',
  '--data-dir': 'dataDir',
  '--database-url': 'databaseUrl',
  '--model': 'modelPath',
  '--models': 'models',
  '--redis-url': 'redisUrl',
  '--backend': 'backend',
  '--preview-every': 'previewEvery',
  '--batching': 'batching',
  '--max-batch-size': 'maxBatchSize',
};

function setPath(obj: Record<string, unknown>, dotted: string, value: string): void {
  const keys = dotted.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[keys[keys.length - 1]!] = value;
}

/** Read the configuration from the environment and command-line flags, validated. Call once at start-up. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = process.argv.slice(2)): Config {
  const raw: Record<string, unknown> = {};
  for (const [name, p] of Object.entries(ENV)) {
    const v = env[name];
    if (v !== undefined && v !== '') setPath(raw, p, v);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--no-batching') {
      setPath(raw, 'batching', 'false');
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const p = FLAGS[flag];
    if (!p) throw new ConfigError(`unknown option ${arg} (known: ${Object.keys(FLAGS).join(', ')}, --no-batching)`);
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new ConfigError(`option ${flag} needs a value`);
    setPath(raw, p, value);
  }
  const config = makeConfig(raw as ConfigInput);
  checkDeployment(config);
  return config;
}

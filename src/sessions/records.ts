/**
 * What the sessions part hands out: its records (Prisma rows, or rows with a field or two more), the inputs of its
 * mutations, and the options the service is built with. No behaviour here.
 */
import type { Config, TurnSettings } from '../config/index.js';
import type { RgbImage } from '../data/index.js';
import type { Db } from './db.js';
import type { EngineStatusInfo, ModelStatusInfo, SolverName } from './engineContract.js';
import type { PubSub } from './events.js';
import type { LatentStore } from './latentStore.js';
import type {
  DrawingSession,
  GeneratedImage,
  Invite,
  Message,
  Participant,
  Role,
  Turn,
  TurnStatus,
} from '../generated/prisma/client.js';

export type ParticipantRecord = Participant;
export type MessageRecord = Message;
export type TurnRecord = Turn;
/** An invite code's row; `code` is set only in createInvite's answer (the database keeps its hash). */
export type InviteRecord = Omit<Invite, 'codeHash'> & { code: string | null };
/** Image metadata (the PNG bytes are loaded only when asked for). */
export type ImageRecord = Omit<GeneratedImage, 'png'>;
/** A session as seen by one of its participants (`viewerId`). */
export type SessionRecord = DrawingSession & { viewerId: string };
export type { DrawingSession, Role, TurnStatus };

export interface JoinResult {
  session: SessionRecord;
  participant: ParticipantRecord;
  token: string;
}

export type SessionEventKind =
  | 'PARTICIPANT_JOINED'
  | 'PARTICIPANT_LEFT'
  | 'PARTICIPANT_ONLINE'
  | 'PARTICIPANT_OFFLINE'
  | 'MESSAGE'
  | 'TURN_QUEUED'
  | 'TURN_STARTED'
  | 'TURN_FINISHED'
  | 'TURN_FAILED'
  | 'TURN_CANCELLED'
  | 'HEAD_MOVED';

/** A lifecycle event as published (mapped to the GraphQL SessionEvent). */
export type SessionEventRecord = SessionEvent;

export interface SessionEvent {
  kind: SessionEventKind;
  sessionId: string;
  at: Date;
  participant?: ParticipantRecord | null;
  message?: MessageRecord | null;
  turn?: TurnRecord | null;
  headTurnId?: string | null;
}

export interface TurnProgressFrame {
  turnId: string;
  sessionId: string;
  sequence: number;
  step: number;
  totalSteps: number;
  etaMs: number;
  /** PNG data URL of the predicted x0. */
  preview: string | null;
  final: boolean;
  image: ImageRecord | null;
  /** When the frame was published. */
  at: Date;
}

/** A served model as `engineStatus` reports it: the engine's view plus the datasets it renders and their settings. */
export type ServedModelRecord = ModelStatusInfo & { datasets: string[]; canvasSize: number; turnDefaults: TurnSettings };

/** What `engineStatus` reports: the engine's status with the batching settings always present. */
export type EngineStatusRecord = Omit<EngineStatusInfo, 'batching' | 'maxBatchSize' | 'models'> & {
  batching: boolean;
  maxBatchSize: number;
  /** Of the default dataset's model. */
  turnDefaults: TurnSettings;
  models: ServedModelRecord[];
};

/** The model that renders one dataset's sessions, as the sessions service needs to know it. */
export interface SessionModel {
  /** The key the engine knows the model by (turns are enqueued with it). */
  key: string;
  /** Shown on sessions (`DrawingSession.model`). */
  name: string;
  /** Side of the square canvas the model draws. */
  canvasSize: number;
  /** Settings of a turn that sets none (resolveTurnDefaults: configuration, then the model's recommendation). */
  turnDefaults: TurnSettings;
}

export interface CreateSessionInput {
  title: string;
  name: string;
  dataset?: string | null;
  allowDrawerTurns?: boolean | null;
  backgroundPng?: string | null;
}

export interface JoinSessionInput {
  sessionId: string;
  name: string;
  role: Role;
  /** An invite code for `role`, created by a teller of the session. */
  invite: string;
}

export interface CreateInviteInput {
  sessionId: string;
  role: Role;
  /** Seconds until the code stops working (null: no expiry). */
  expiresInSeconds?: number | null;
  /** Joins the code allows (null: no limit). */
  maxUses?: number | null;
}

export interface SubmitTurnInput {
  sessionId: string;
  instruction: string;
  steps?: number | null;
  guidanceScale?: number | null;
  icmGuidanceScale?: number | null;
  candidates?: number | null;
  seed?: number | null;
  /** The sampler's solver; null or absent: the model's default. */
  solver?: SolverName | null;
}

export interface SessionsServiceOptions {
  db: Db;
  pubsub: PubSub;
  config: Config;
  /** Dataset -> the model that renders its sessions; only these datasets can have new sessions. */
  models: Partial<Record<string, SessionModel>>;
  /** The empty canvas of a dataset. */
  background(dataset: string, size: number): RgbImage;
  encodePng(image: RgbImage): Buffer;
  /** Results' latents shared across generation workers (scale-out); none: each engine keeps its own. */
  latents?: LatentStore;
}

/** Turns not yet ended. */
export const ACTIVE: TurnStatus[] = ['QUEUED', 'RUNNING'];

/** The columns of an ImageRecord (everything but the PNG bytes). */
export const IMAGE_META = {
  id: true,
  sessionId: true,
  width: true,
  height: true,
  byteLength: true,
  sha256: true,
  createdAt: true,
} as const;

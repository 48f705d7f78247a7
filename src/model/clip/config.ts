/** Hugging Face CLIP config.json -> our VisionConfig / TextConfig (HF defaults where a field is absent). */
import type { HiddenAct, TextConfig, VisionConfig } from '../encoders/index.js';

type Json = Record<string, unknown>;

export interface HfClipConfig {
  vision: VisionConfig | null;
  text: TextConfig | null;
  /** HF projection_dim (our projections are fresh, but d = 512 in the paper matches it for ViT-B/32). */
  projectionDim: number;
}

function num(o: Json, key: string, dflt: number): number {
  const v = o[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`CLIP config: ${key} is not a number`);
  return v;
}

function act(o: Json): HiddenAct {
  const a = o.hidden_act ?? 'quick_gelu';
  if (a === 'quick_gelu' || a === 'gelu') return a;
  if (a === 'gelu_new' || a === 'gelu_pytorch_tanh' || a === 'gelu_fast') return 'gelu_tanh';
  throw new Error(`CLIP config: unsupported hidden_act ${String(a)}`);
}

/** CLIPVisionConfig (defaults as in transformers: ViT-B/32). */
export function visionConfigFromHf(v: Json): VisionConfig {
  return {
    imageSize: num(v, 'image_size', 224),
    patchSize: num(v, 'patch_size', 32),
    width: num(v, 'hidden_size', 768),
    layers: num(v, 'num_hidden_layers', 12),
    heads: num(v, 'num_attention_heads', 12),
    inChannels: num(v, 'num_channels', 3),
    mlpDim: num(v, 'intermediate_size', 3072),
    hiddenAct: act(v),
    layerNormEps: num(v, 'layer_norm_eps', 1e-5),
  };
}

/**
 * CLIPTextConfig (defaults as in transformers). HF pools at the argmax id when eos_token_id is the legacy 2,
 * else at the first eos_token_id; we do the same.
 */
export function textConfigFromHf(t: Json): TextConfig {
  const eos = num(t, 'eos_token_id', 2);
  return {
    vocabSize: num(t, 'vocab_size', 49408),
    contextLength: num(t, 'max_position_embeddings', 77),
    width: num(t, 'hidden_size', 512),
    layers: num(t, 'num_hidden_layers', 12),
    heads: num(t, 'num_attention_heads', 8),
    mlpDim: num(t, 'intermediate_size', 2048),
    hiddenAct: act(t),
    layerNormEps: num(t, 'layer_norm_eps', 1e-5),
    ...(eos === 2 ? {} : { eosTokenId: eos }),
  };
}

/** Parse a CLIPModel, CLIPVisionModel(WithProjection) or CLIPTextModel(WithProjection) config.json. */
export function clipConfigFromHf(json: Json): HfClipConfig {
  const type = json.model_type;
  if (type === 'clip_vision_model') return { vision: visionConfigFromHf(json), text: null, projectionDim: num(json, 'projection_dim', 512) };
  if (type === 'clip_text_model') return { vision: null, text: textConfigFromHf(json), projectionDim: num(json, 'projection_dim', 512) };
  if (type !== undefined && type !== 'clip') throw new Error(`config.json: model_type ${String(type)} is not a CLIP model`);
  return {
    vision: visionConfigFromHf((json.vision_config ?? {}) as Json),
    text: textConfigFromHf((json.text_config ?? {}) as Json),
    projectionDim: num(json, 'projection_dim', 512),
  };
}

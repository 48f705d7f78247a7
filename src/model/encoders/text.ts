/**
 * CLIP's causal text transformer with a fresh linear projection to the joint space d. Backbone parameter names
 * follow Hugging Face's CLIPTextTransformer under `backbone.` so that `text_model.*` weights load one to one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Module, Linear, LayerNorm, Embedding } from '../nn.js';
import { TransformerStack, causalMask } from './transformer.js';
import { validateTextConfig, type TextConfig } from './config.js';
import type { EncoderOutput, BackboneOutput } from './types.js';

export class TextEmbeddings extends Module {
  readonly token_embedding: Embedding;
  readonly position_embedding: Embedding;
  constructor(readonly config: TextConfig) {
    super();
    this.token_embedding = this.child('token_embedding', new Embedding(config.vocabSize, config.width));
    this.position_embedding = this.child('position_embedding', new Embedding(config.contextLength, config.width));
  }
  apply(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const l = ids.shape[1];
      if (l > this.config.contextLength) throw new Error(`text of ${l} tokens exceeds context length ${this.config.contextLength}`);
      const pos = this.position_embedding.table.slice([0, 0], [l, this.config.width]);
      return tf.add(this.token_embedding.apply(ids), pos) as tf.Tensor3D;
    });
  }
}

/** Hugging Face's CLIPTextTransformer: embeddings, causal encoder, final_layer_norm. */
export class TextTransformer extends Module {
  readonly embeddings: TextEmbeddings;
  readonly encoder: TransformerStack;
  readonly final_layer_norm: LayerNorm;
  constructor(readonly config: TextConfig) {
    super();
    const eps = config.layerNormEps ?? 1e-5;
    this.embeddings = this.child('embeddings', new TextEmbeddings(config));
    this.encoder = this.child(
      'encoder',
      new TransformerStack(config.width, config.layers, config.heads, config.mlpDim ?? 4 * config.width, config.hiddenAct ?? 'quick_gelu', eps),
    );
    this.final_layer_norm = this.child('final_layer_norm', new LayerNorm(config.width, eps));
  }
  /** lastHiddenState: after final_layer_norm [B, L, width] (as HF); pooledOutput: its row at each end index. */
  forward(ids: tf.Tensor2D, endIndex: ArrayLike<number>): BackboneOutput {
    return tf.tidy(() => {
      const [b, l] = ids.shape;
      const h = this.encoder.apply(this.embeddings.apply(ids), causalMask(l));
      const lastHiddenState = this.final_layer_norm.apply(h) as tf.Tensor3D;
      const rows = new Int32Array(b);
      for (let i = 0; i < b; i++) {
        const e = endIndex[i]!;
        if (!(e >= 0 && e < l)) throw new Error(`end index ${e} out of range for ${l} tokens`);
        rows[i] = i * l + e;
      }
      const pooledOutput = tf.gather(lastHiddenState.reshape([b * l, this.config.width]), tf.tensor1d(rows, 'int32')) as tf.Tensor2D;
      return { lastHiddenState, pooledOutput };
    });
  }
}

export class TextEncoder extends Module {
  readonly backbone: TextTransformer;
  readonly projection: Linear;
  constructor(readonly config: TextConfig, readonly projectionDim: number) {
    super();
    validateTextConfig(config);
    this.backbone = this.child('backbone', new TextTransformer(config));
    this.projection = this.child('projection', new Linear(config.width, projectionDim));
  }

  /**
   * Where each row ends: the first `eosTokenId` if the config names one (word tokenizer), else the first argmax id
   * as Hugging Face CLIP does (<|endoftext|> is CLIP's largest id). A row without the end token pools at its last
   * position.
   */
  endIndices(ids: tf.Tensor2D): Int32Array {
    const [b, l] = ids.shape;
    const v = ids.dataSync();
    const out = new Int32Array(b);
    const eos = this.config.eosTokenId;
    for (let i = 0; i < b; i++) {
      let best = l - 1;
      if (eos !== undefined) {
        for (let j = 0; j < l; j++) if (v[i * l + j] === eos) { best = j; break; }
      } else {
        best = 0;
        for (let j = 1; j < l; j++) if (v[i * l + j]! > v[i * l + best]!) best = j;
      }
      out[i] = best;
    }
    return out;
  }

  /** Backbone outputs before the projection (HF's last_hidden_state and pooler_output). */
  features(ids: tf.Tensor2D, endIndex?: ArrayLike<number>): BackboneOutput {
    return this.backbone.forward(ids, endIndex ?? this.endIndices(ids));
  }

  /**
   * @param ids int32 [B, L], L <= contextLength
   * @param endIndex optional end-token positions (a tokenizer's `encode().endIndex`); found from the ids otherwise
   * @returns pooled: projected end-token state [B, d]; sequence: final-LN'd token states [B, L, width]
   */
  encode(ids: tf.Tensor2D, endIndex?: ArrayLike<number>): EncoderOutput {
    return tf.tidy(() => {
      const { lastHiddenState, pooledOutput } = this.features(ids, endIndex);
      return { pooled: this.projection.apply(pooledOutput) as tf.Tensor2D, sequence: lastHiddenState };
    });
  }

  backboneParameters(): tf.Variable[] {
    return this.backbone.parameters();
  }

  headParameters(): tf.Variable[] {
    return this.projection.parameters();
  }
}

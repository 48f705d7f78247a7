/**
 * Tensor backend selection (preliminary: stock cpu only until the native-cpu backend lands).
 * Every program entry calls initBackend once before tensor work.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

export type BackendName = 'tensorflow' | 'native-cpu' | 'cpu';
export interface BackendInfo {
  name: BackendName;
  device: string;
  threads: number;
}

let current: BackendInfo | null = null;

export async function initBackend(_preference: 'auto' | BackendName = 'auto'): Promise<BackendInfo> {
  if (current) return current;
  await tf.setBackend('cpu');
  await tf.ready();
  current = { name: 'cpu', device: 'cpu', threads: 1 };
  return current;
}

export function backendInfo(): BackendInfo {
  if (!current) throw new Error('initBackend() has not run');
  return current;
}

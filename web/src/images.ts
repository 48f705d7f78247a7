/**
 * Server images as object URLs. The image route wants the bearer token, which <img src> cannot send, so each
 * image is fetched once with it (image ids never change their bytes) and kept for the page's life.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Api, ImageRef } from './api.js';

const cache = new Map<string, Promise<string>>();

export function imageObjectUrl(api: Api, image: ImageRef): Promise<string> {
  let url = cache.get(image.id);
  if (!url) {
    url = api.imageBlob(image.url).then((b) => URL.createObjectURL(b));
    url.catch(() => cache.delete(image.id)); // a failed load may succeed later (e.g. after a reconnect)
    cache.set(image.id, url);
  }
  return url;
}

/**
 * The object URL of an image once loaded. While a new image loads the previous one stays (no flash of nothing);
 * `id` says which image the URL shows.
 */
export function useImageUrl(api: Api, image: ImageRef | null | undefined): { id: string; url: string } | null {
  const [loaded, setLoaded] = useState<{ id: string; url: string } | null>(null);
  const id = image?.id;
  useEffect(() => {
    if (!image) return;
    let live = true;
    imageObjectUrl(api, image).then(
      (u) => live && setLoaded({ id: image.id, url: u }),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [id]);
  return loaded;
}

/** The image scaled up by an integer factor without smoothing, as a PNG blob (for a crisp download). */
export async function scaledPng(src: string, factor: number): Promise<Blob> {
  const img = new Image();
  img.src = src;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth * factor;
  canvas.height = img.naturalHeight * factor;
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('This browser cannot draw on a canvas.');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('PNG encoding failed.'))), 'image/png'));
}

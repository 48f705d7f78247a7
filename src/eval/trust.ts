/** The detector F1 on ground-truth renderings below which its scores are not to be trusted (issue 4). */
export const DETECTOR_TRUST_F1 = { iclevr: 0.95, codraw: 0.9 } as const;

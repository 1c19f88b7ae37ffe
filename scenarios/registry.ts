/*
 * The list of reference scenarios `npm start` knows.
 */
import { ringTour } from './ring-tour.ts';

export interface Scenario {
  name: string;
  summary: string;
  run(say: (line: string) => void): Promise<void>;
}

export const SCENARIOS: Scenario[] = [
  { name: 'ring-tour', summary: 'a DomU and Dom0 share a ring: grants, event channels, notification hold-off', run: ringTour },
];

export const DEFAULT_SCENARIO = 'ring-tour';

// The scheduler tests' kernel is the CPU scenario's and the bench's (scenarios/sched/cpu-kernel.ts).
export * from '../../scenarios/sched/cpu-kernel.ts';

"""The micro frontend behind :mod:`wakeprep.features`, in three implementations.

- :mod:`.reference`: pymicro-features (1.x or 2.x) fed 10 ms at a time, exactly as
  microWakeWord's ``generate_features_for_clip`` feeds it; the truth the others are
  tested against.
- :mod:`.cpu`: the same integer algorithm over a batch of clips, no Python per frame: the
  C kernel (``cpu_kernel.c``, built at install time, loaded by :mod:`.ckernel`) or, where
  it is not built, the same kernel compiled with numba (:mod:`.numba_kernel`).
- :mod:`.gpu`: the same algorithm as two CUDA kernels (``microfrontend.cu``, loaded with
  CuPy at run time) over a batch of clips on the device.

All give the same uint16 codes and frame counts; :mod:`.tables` holds the constants they
share.
"""

"""CUDA from Python, behind one interface (``edge.cuda.base.CudaLayer``) with two implementations:
PyCUDA (the design card's choice; JetPack 4/5) and cuda-python (what NVIDIA's TensorRT 10 samples
and JetPack 6+ boards use). ``open_cuda(prefer)`` picks one. Both are imported lazily.
"""

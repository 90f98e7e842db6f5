"""Execution environments: Uniswap V3 math, the mock simulator, Gateway (real mode)."""

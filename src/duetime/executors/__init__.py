"""Executors run job handlers: process pool (default), threads, asyncio."""

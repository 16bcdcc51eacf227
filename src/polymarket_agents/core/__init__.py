"""The core layer: asyncio supervision with no dependency beyond the standard library."""

"""The asyncio edges that own sockets and move bytes."""

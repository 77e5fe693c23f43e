"""A run's MediaOutputs summed up for the report, as upstream's GetMediaOutputStatistics (MediaOutputStats)."""

from __future__ import annotations

from typing import Any


def media_stats(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Upstream's MediaOutputStats: counts by type and the total size."""
    by_type: dict[str, int] = {}
    for output in outputs:
        kind = str(output.get("type", ""))
        by_type[kind] = by_type.get(kind, 0) + 1
    size = sum(int(o.get("size_bytes") or 0) for o in outputs)
    return {"total": len(outputs), "image_count": by_type.get("image", 0), "audio_count": by_type.get("audio", 0),
            "video_count": by_type.get("video", 0), "total_size_bytes": size, "by_type": by_type}

"""pydeck layer builders. Every map works with no basemap: a graticule and branch labels give the bearings."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import pydeck as pdk

STATUS_COLOURS: dict[str, list[int]] = {
    "available": [46, 160, 67],
    "rented": [31, 119, 180],
    "maintenance": [255, 140, 0],
    "in_transit": [148, 103, 189],
    "retired": [127, 127, 127],
}
STATUS_LABELS = {"available": "Available", "rented": "Rented", "maintenance": "Maintenance",
                 "in_transit": "InTransit", "retired": "Retired"}
BRANCH_COLOUR = [40, 70, 120]


def _esc(values: pd.Series) -> pd.Series:
    """Tooltips are HTML: names typed by staff must not become markup."""
    return values.astype(str).map(html.escape)


def view_for(points: pd.DataFrame, *, pitch: int = 0) -> pdk.ViewState:
    """A view that frames all the points (lat/lon columns)."""
    if points.empty:
        return pdk.ViewState(latitude=51.5, longitude=-0.12, zoom=7, pitch=pitch)
    lat_min, lat_max = points["lat"].min(), points["lat"].max()
    lon_min, lon_max = points["lon"].min(), points["lon"].max()
    span = max(lat_max - lat_min, (lon_max - lon_min) * math.cos(math.radians((lat_min + lat_max) / 2)), 0.01)
    zoom = float(np.clip(math.log2(360 / span) - 1.3, 3, 15))
    return pdk.ViewState(latitude=(lat_min + lat_max) / 2, longitude=(lon_min + lon_max) / 2, zoom=zoom,
                         pitch=pitch)


def graticule_layer(points: pd.DataFrame, step: float = 0.5) -> pdk.Layer:
    """Faint lines of latitude and longitude around the points, so an offline map still reads as a map."""
    lat_lo = math.floor((points["lat"].min() if not points.empty else 50) / step) * step - step
    lat_hi = math.ceil((points["lat"].max() if not points.empty else 53) / step) * step + step
    lon_lo = math.floor((points["lon"].min() if not points.empty else -2) / step) * step - step
    lon_hi = math.ceil((points["lon"].max() if not points.empty else 1) / step) * step + step
    paths = [{"path": [[lon_lo, lat], [lon_hi, lat]]} for lat in np.arange(lat_lo, lat_hi + step / 2, step)]
    paths += [{"path": [[lon, lat_lo], [lon, lat_hi]]} for lon in np.arange(lon_lo, lon_hi + step / 2, step)]
    return pdk.Layer("PathLayer", data=paths, get_path="path", get_color=[150, 150, 150, 70],
                     width_min_pixels=1, pickable=False, id="graticule")


def vehicle_layer(vehicles: pd.DataFrame) -> pdk.Layer:
    data = vehicles.assign(
        colour=vehicles["status"].map(STATUS_COLOURS),
        status_label=vehicles["status"].map(STATUS_LABELS),
        fuel=vehicles["fuel_level"].astype(int).astype(str) + "%",
        where=vehicles["branch"].fillna("on the road"),
    )
    data["tip"] = ("<b>" + _esc(data["plate"]) + "</b> · " + _esc(data["make"]) + " " + _esc(data["model"])
                   + " (" + _esc(data["vehicle_type"]) + ")<br/>" + data["status_label"] + " · fuel " + data["fuel"]
                   + "<br/>" + _esc(data["where"]))
    data = data[["lon", "lat", "colour", "tip"]]
    return pdk.Layer("ScatterplotLayer", data=data, id="vehicles", get_position=["lon", "lat"],
                     get_fill_color="colour", get_radius=60, radius_min_pixels=3, radius_max_pixels=9,
                     pickable=True, stroked=False, opacity=0.85)


def branch_layer(branches: pd.DataFrame, *, filled: bool) -> pdk.Layer:
    """Branches sized by cars on hand; filled (coloured by share available) when cars are not drawn one by one."""
    data = branches.assign(
        radius=np.sqrt(branches["on_hand"].clip(lower=0) + 1) * 180,
        share=np.where(branches["on_hand"] > 0, branches["available"] / branches["on_hand"].clip(lower=1), 0),
    )
    data["colour"] = [
        [int(220 - 180 * s), int(80 + 100 * s), 60, 170] if filled else [*BRANCH_COLOUR, 40]
        for s in data["share"]
    ]
    data["tip"] = ("<b>" + _esc(data["code"]) + " " + _esc(data["name"]) + "</b><br/>" + data["on_hand"].astype(str)
                   + " cars on hand · " + data["available"].astype(str) + " available · "
                   + data["maintenance"].astype(str) + " in maintenance")
    data = data[["lon", "lat", "radius", "colour", "tip"]]
    return pdk.Layer("ScatterplotLayer", data=data, id="branches", get_position=["lon", "lat"],
                     get_radius="radius", get_fill_color="colour", get_line_color=[*BRANCH_COLOUR, 200],
                     stroked=True, line_width_min_pixels=1, radius_min_pixels=4, pickable=True)


def label_layer(branches: pd.DataFrame) -> pdk.Layer:
    return pdk.Layer("TextLayer", data=branches[["lon", "lat", "code"]], id="branch-labels",
                     get_position=["lon", "lat"], get_text="code", get_size=11, get_color=[60, 60, 60, 220],
                     get_pixel_offset=[0, -14], pickable=False)


def fleet_deck(vehicles: pd.DataFrame, branches: pd.DataFrame, *, aggregated: bool,
               basemap: str | None) -> pdk.Deck:
    """The fleet map: single cars coloured by status, or branch aggregates at fleet scale."""
    frame_points = branches if aggregated or vehicles.empty else vehicles
    layers = [graticule_layer(frame_points), branch_layer(branches, filled=aggregated)]
    if not aggregated and not vehicles.empty:
        layers.append(vehicle_layer(vehicles))
    layers.append(label_layer(branches))
    return pdk.Deck(
        layers=layers,
        initial_view_state=view_for(frame_points),
        map_provider="carto" if basemap else None,
        map_style=basemap,
        tooltip={"html": "{tip}", "style": {"fontSize": "12px"}},
    )


def branch_overview_deck(branches: pd.DataFrame, basemap: str | None) -> pdk.Deck:
    """All branches, sized by cars on hand, labelled with their code."""
    frame = branches.assign(available=branches.get("on_hand", 0), maintenance=0)
    return pdk.Deck(
        layers=[graticule_layer(frame), branch_layer(frame, filled=False), label_layer(frame)],
        initial_view_state=view_for(frame),
        map_provider="carto" if basemap else None, map_style=basemap,
        tooltip={"html": "{tip}", "style": {"fontSize": "12px"}},
    )

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
    zoom = float(np.clip(math.log2(360 / span) - 0.7, 3, 15))
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


def vehicle_deck(*, status: str, plate: str, position: tuple[float, float] | None,
                 branch: tuple[float, float, str] | None, trail: pd.DataFrame, basemap: str | None,
                 branches: pd.DataFrame | None = None) -> pdk.Deck:
    """One car: its last reported position (coloured by status), its branch, the path of its recent readings, and
    the other branches (lat, lon, code) faintly, for bearings when there is no basemap."""
    points = pd.DataFrame(  # the car last, so it is drawn over its branch when it stands there
        ([{"lat": branch[0], "lon": branch[1], "tip": f"Its branch <b>{html.escape(branch[2])}</b>",
           "colour": [*BRANCH_COLOUR, 200]}] if branch else [])
        + ([{"lat": position[0], "lon": position[1], "tip": f"<b>{html.escape(plate)}</b> · last reported here",
             "colour": STATUS_COLOURS.get(status, [90, 90, 90])}] if position else []),
        columns=["lat", "lon", "tip", "colour"],
    )
    frame = pd.concat([points[["lat", "lon"]], trail[["lat", "lon"]]]) if not trail.empty else points[["lat", "lon"]]
    if branches is not None and not branches.empty and not frame.empty:
        # frame the two nearest branches too, so a car on the road is seen in relation to places people know
        centre_lat, centre_lon = frame["lat"].mean(), frame["lon"].mean()
        near = ((branches["lat"] - centre_lat) ** 2
                + ((branches["lon"] - centre_lon) * math.cos(math.radians(centre_lat))) ** 2).nsmallest(3).index
        frame = pd.concat([frame, branches.loc[near, ["lat", "lon"]]])
    layers = [graticule_layer(frame, step=0.1)]
    if branches is not None and not branches.empty:
        others = branches.assign(tip="Branch <b>" + _esc(branches["code"]) + "</b>")[["lat", "lon", "code", "tip"]]
        layers.append(pdk.Layer("ScatterplotLayer", data=others, id="other-branches", get_position=["lon", "lat"],
                                get_fill_color=[*BRANCH_COLOUR, 50], get_radius=120, radius_min_pixels=3,
                                pickable=True))
        layers.append(label_layer(others))
    if len(trail) > 1:
        path = [{"path": trail[["lon", "lat"]].astype(float).values.tolist(), "tip": "path of the readings"}]
        layers.append(pdk.Layer("PathLayer", data=path, id="trail", get_path="path", get_color=[31, 119, 180, 160],
                                width_min_pixels=2, pickable=True))
    layers.append(pdk.Layer("ScatterplotLayer", data=points, id="vehicle", get_position=["lon", "lat"],
                            get_fill_color="colour", get_radius=80, radius_min_pixels=6, radius_max_pixels=14,
                            pickable=True, stroked=True, get_line_color=[255, 255, 255], line_width_min_pixels=1))
    view = view_for(frame)
    view.zoom = min(view.zoom - 0.5, 12)  # a margin, so no point hides under the zoom buttons
    return pdk.Deck(layers=layers, initial_view_state=view, map_provider="carto" if basemap else None,
                    map_style=basemap, tooltip={"html": "{tip}", "style": {"fontSize": "12px"}})


FREE_COLOUR = [46, 160, 67]
SEARCH_COLOUR = [200, 40, 40]


def availability_deck(cars: pd.DataFrame, branches: pd.DataFrame, *, point: tuple[float, float] | None,
                      radius_km: float | None, branch_id: int | None, basemap: str | None) -> pdk.Deck:
    """Free cars per branch (sized by how many, with the cheapest daily rate), every branch faintly for bearings
    and picking, and the point and radius searched. Cars stand at their branch, so they are drawn per branch."""
    all_branches = branches.assign(location_id=branches["id"],
                                   tip="<b>" + _esc(branches["code"]) + " " + _esc(branches["name"]) + "</b>")
    layers: list[pdk.Layer] = []
    frame = all_branches.iloc[0:0][["lat", "lon"]]
    if point is not None:
        ring = pd.DataFrame([{"lat": point[0], "lon": point[1], "radius": (radius_km or 0) * 1000,
                              "tip": f"Searched around {point[0]:.4f}, {point[1]:.4f}"}])
        layers.append(pdk.Layer("ScatterplotLayer", data=ring, id="search-radius", get_position=["lon", "lat"],
                                get_radius="radius", filled=False, stroked=True,
                                get_line_color=[*SEARCH_COLOUR, 150], line_width_min_pixels=1, pickable=False))
        layers.append(pdk.Layer("ScatterplotLayer", data=ring, id="search-point", get_position=["lon", "lat"],
                                get_radius=40, radius_min_pixels=5, get_fill_color=[*SEARCH_COLOUR, 230],
                                pickable=True))
        reach = (radius_km or 0) / 111.32
        wide = reach / max(math.cos(math.radians(point[0])), 0.01)
        frame = pd.DataFrame({"lat": [point[0] - reach, point[0] + reach], "lon": [point[1] - wide, point[1] + wide]})
    elif branch_id is not None:
        frame = all_branches[all_branches["id"] == branch_id][["lat", "lon"]]
    if not cars.empty:
        per_branch = (cars.groupby(["location_id", "location_code", "location_name", "lat", "lon", "currency"],
                                   as_index=False)
                      .agg(free=("id", "count"), cheapest=("daily_rate", "min")))
        per_branch["radius"] = (per_branch["free"] ** 0.5) * 150
        per_branch["tip"] = ("<b>" + _esc(per_branch["location_code"]) + " " + _esc(per_branch["location_name"])
                             + "</b><br/>" + per_branch["free"].astype(str) + " free cars shown, from "
                             + per_branch["cheapest"].astype(str) + " " + per_branch["currency"] + " a day")
        layers.append(pdk.Layer("ScatterplotLayer", data=per_branch[["location_id", "lat", "lon", "radius", "tip"]],
                                id="free-cars", get_position=["lon", "lat"], get_radius="radius",
                                radius_min_pixels=5, get_fill_color=[*FREE_COLOUR, 190], stroked=True,
                                get_line_color=[255, 255, 255], line_width_min_pixels=1, pickable=True))
        if point is None:
            frame = pd.concat([frame, per_branch[["lat", "lon"]]])
    if frame.empty:
        frame = all_branches[["lat", "lon"]]
    layers.insert(0, pdk.Layer("ScatterplotLayer", data=all_branches[["location_id", "lat", "lon", "tip"]],
                               id="search-branches", get_position=["lon", "lat"], get_radius=120,
                               radius_min_pixels=4, get_fill_color=[*BRANCH_COLOUR, 70], pickable=True))
    span = float(frame["lat"].max() - frame["lat"].min()) if len(frame) else 0.0
    layers.insert(0, graticule_layer(frame, step=0.1 if span < 1 else 0.5))
    layers.append(label_layer(all_branches))
    view = view_for(frame)
    view.zoom = min(view.zoom, 12.5)
    return pdk.Deck(layers=layers, initial_view_state=view, map_provider="carto" if basemap else None,
                    map_style=basemap, tooltip={"html": "{tip}", "style": {"fontSize": "12px"}})

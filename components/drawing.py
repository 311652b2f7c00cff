"""Synthetic product images: the notebook's look, a shifted variant, and photo-like parts.

``draw_product_image`` is the entry point. ``draw_notebook_product`` ("standard", "strong")
and ``draw_photo_product`` ("photo") only compose small painters, each named for what it
paints, in the order they draw from the generator:
- notebook: ``place_notebook_product``, then one of ``paint_notebook_scratch``,
  ``paint_notebook_crack``, ``paint_notebook_spots``, then ``finish_notebook_image``;
- photo: ``paint_photo_background``, the part (``choose_part_shape``, ``paint_part_mask``,
  ``paint_part_material``, ``paint_benign_marks``, ``place_part``, ``cast_drop_shadow``),
  ``paint_reflection``, one of ``paint_photo_scratch``, ``paint_photo_crack``,
  ``paint_photo_stains``, then ``photograph`` (light fall-off, exposure, sensor, JPEG).
Change a look in its painter; a painter's generator draws are part of every image after it,
so tests/test_drawing.py pins each image by a fingerprint.

KFP lightweight components carry only their own source, so every function here is
self-contained (imports inside, no module constants; helpers called by their global name) and
is copied into the components that reach it (components/shipping.py).

Every image is a pure function of the ``random.Random`` state it is given: only that
generator is drawn from (``rng.randbytes`` for noise fields), and PIL's operations are
deterministic. Only Pillow is needed (numpy is not among the components' packages).
"""


def drawing_variations():
    """The ``variation`` names ``draw_product_image`` accepts, in order of difficulty."""
    return ("standard", "strong", "photo")


def draw_product_image(rng, defect_type=None, variation="standard"):
    """Draws one product image; the entry point of this module.

    Args:
        rng: a ``random.Random``; the image is a pure function of its state.
        defect_type: None for a good product, or "Scratch", "Crack", "Discoloration".
        variation:
            "standard": the source notebook's look (100x100, background #DDDDDD, blue
                product, red scratch, white crack, green spot), each image varied:
                product position, size and shade; defects anywhere on the product, at
                any angle, of varied length and width; mild sensor noise.
            "strong": the same look with geometry and photometry shifted beyond
                "standard"'s ranges (non-square and smaller/larger products, shorter,
                longer, thinner and thicker defects, kinked cracks, two spots, stronger
                noise, blur, JPEG): a set to score a model tuned on "standard".
            "photo": photo-like part images of about 320 px: textured, lit parts of
                several shapes on varied backgrounds, small defects (1-3 px scratches
                and branching cracks, one or several stains), benign marks on every
                class (reflections, seams, machining lines), lighting changes, sensor
                noise, blur and JPEG.

    Returns:
        An RGB ``PIL.Image``: 100x100 for "standard" and "strong", about 320x320
        (300-340 px per side) for "photo".

    Raises:
        ValueError: On an unknown variation or defect type.
    """
    if defect_type not in (None, "Scratch", "Crack", "Discoloration"):
        raise ValueError(f"unknown defect type {defect_type!r}; expected one of Scratch, Crack, Discoloration")
    if variation in ("standard", "strong"):
        return draw_notebook_product(rng, defect_type, strong=variation == "strong")
    if variation == "photo":
        return draw_photo_product(rng, defect_type)
    raise ValueError(f"variation must be one of {', '.join(drawing_variations())}, not {variation!r}")


def gaussian_noise_image(rng, size, sigma):
    """A greyscale ("L") field of Gaussian noise around 128 with spread ``sigma``.

    Uniform bytes from ``rng.randbytes`` go through the inverse normal CDF as a lookup
    table: fast and seedable (PIL's ``effect_noise`` is not).
    """
    from statistics import NormalDist

    from PIL import Image

    cache = gaussian_noise_image.__dict__  # the 256 standard normal quantiles, computed once
    if "quantiles" not in cache:
        cache["quantiles"] = [NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)]
    table = [max(0, min(255, round(128 + sigma * z))) for z in cache["quantiles"]]
    width, height = size
    return Image.frombytes("L", (width, height), rng.randbytes(width * height)).point(table)


def jpeg_round_trip(image, quality):
    """``image`` saved as a JPEG of ``quality`` and read back (its compression artefacts)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def clamp_level(value):
    """``value`` rounded and clipped to a channel level, 0-255."""
    return max(0, min(255, int(round(value))))


# ---- the notebook's look ("standard", "strong"): 100x100, flat colours


def draw_notebook_product(rng, defect_type=None, strong=False):
    """The source notebook's look, varied per image; see ``draw_product_image``.

    The notebook draws a 60x60 product at (20, 20); a red scratch from (30, 30) to (70, 70)
    of width 2 (length 0.94 of the product side); a white crack from (30, 50) to (70, 45)
    of width 3 (0.67 of the side); a green spot of radius 10. Here those become ranges
    around them, at any angle and anywhere on the product; ``strong`` widens every range
    beyond the standard one and adds blur and JPEG.
    """
    import random

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (100, 100), shade(rng, (0xDD, 0xDD, 0xDD), 20 if strong else 6))
    draw = ImageDraw.Draw(image)
    box = place_notebook_product(rng, strong)
    left, top, width, height = box
    draw.rectangle((left, top, left + width, top + height), fill=shade(rng, (0x55, 0x55, 0xAA), 30 if strong else 12))
    # Noise, blur and JPEG come from their own stream, drawn before the defect: the same
    # rng state gives the same image with and without a defect, apart from the defect.
    finish = random.Random(rng.getrandbits(64))
    if defect_type is not None:
        painters = {
            "Scratch": paint_notebook_scratch,
            "Crack": paint_notebook_crack,
            "Discoloration": paint_notebook_spots,
        }
        painters[defect_type](rng, draw, box, strong)
    return finish_notebook_image(finish, image, strong)


def jitter(rng, value, spread):
    """``value`` moved by a whole number of at most ``spread`` either way."""
    return value + rng.randint(-spread, spread)


def shade(rng, rgb, spread):
    """``rgb`` with each channel jittered by up to ``spread``, clipped to 0-255."""
    return tuple(max(0, min(255, jitter(rng, c, spread))) for c in rgb)


def place_notebook_product(rng, strong):
    """The product rectangle ``(left, top, width, height)`` in the 100x100 frame, at least
    2 px from its edges: square and 54-66 px (standard); 42-76 px, up to 1.35:1 (strong)."""
    if strong:
        side = rng.randint(42, 76)
        aspect = rng.uniform(1.0, 1.35)
        width, height = (side, round(side / aspect)) if rng.random() < 0.5 else (round(side / aspect), side)
        spread = 12
    else:
        width = height = rng.randint(54, 66)
        spread = 5
    left = max(2, min(98 - width, jitter(rng, 50 - width // 2, spread)))
    top = max(2, min(98 - height, jitter(rng, 50 - height // 2, spread)))
    return left, top, width, height


def line_on_product(rng, box, length, margin):
    """Endpoints of a segment of ``length`` at a random angle, ``margin`` px inside ``box``
    (``left, top, width, height``); shortened until it fits."""
    import math

    left, top, width, height = box
    for _ in range(50):
        angle = rng.uniform(0, math.pi)
        dx, dy = length / 2 * math.cos(angle), length / 2 * math.sin(angle)
        x_room, y_room = width / 2 - margin - abs(dx), height / 2 - margin - abs(dy)
        if x_room >= 0 and y_room >= 0:
            cx = left + width / 2 + rng.uniform(-x_room, x_room)
            cy = top + height / 2 + rng.uniform(-y_room, y_room)
            return (cx - dx, cy - dy), (cx + dx, cy + dy)
        length *= 0.9
    raise RuntimeError("no room for the defect")  # unreachable for the notebook's sizes


def paint_notebook_scratch(rng, draw, box, strong):
    """A red straight line on the product ``box``: 0.4-0.95 of its side, 1-3 px wide
    (strong: 0.22-1.0, 1-4 px)."""
    side = min(box[2], box[3])
    length = side * (rng.uniform(0.22, 1.0) if strong else rng.uniform(0.4, 0.95))
    line_width = rng.choice((1, 2, 3, 4) if strong else (1, 2, 2, 3))
    start, end = line_on_product(rng, box, length, margin=2 + line_width / 2)
    draw.line(start + end, fill=shade(rng, (0xFF, 0x33, 0x33), 20), width=line_width)


def paint_notebook_crack(rng, draw, box, strong):
    """A white line on the product ``box``: 0.35-0.75 of its side, 2-4 px wide (strong:
    0.22-0.9, 1-5 px, and half of them kinked in the middle)."""
    side = min(box[2], box[3])
    length = side * (rng.uniform(0.22, 0.9) if strong else rng.uniform(0.35, 0.75))
    line_width = rng.choice((1, 2, 3, 4, 5) if strong else (2, 3, 3, 4))
    start, end = line_on_product(rng, box, length, margin=2 + line_width / 2)
    points = [start, end]
    if strong and rng.random() < 0.5:  # a kinked crack: the middle point pushed sideways
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        nx, ny = -(end[1] - start[1]) / length, (end[0] - start[0]) / length
        bend = rng.uniform(-0.15, 0.15) * length
        points = [start, (mx + nx * bend, my + ny * bend), end]
    fill = shade(rng, (0xFF, 0xFF, 0xFF), 12)
    draw.line([c for p in points for c in p], fill=fill, width=line_width, joint="curve")


def paint_notebook_spots(rng, draw, box, strong):
    """A green ellipse inside the product ``box``: radius 6-12 px, up to 1.25:1 (strong:
    4-15 px, up to 1.6:1, and two spots in 30 % of the images)."""
    left, top, width, height = box
    spots = 2 if strong and rng.random() < 0.3 else 1
    for _ in range(spots):
        radius = rng.uniform(4, 15) if strong else rng.uniform(6, 12)
        aspect = rng.uniform(0.6, 1.6) if strong else rng.uniform(0.8, 1.25)
        rx, ry = min(radius * aspect, width / 2 - 3), min(radius / aspect, height / 2 - 3)
        cx = rng.uniform(left + rx + 2, left + width - rx - 2)
        cy = rng.uniform(top + ry + 2, top + height - ry - 2)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=shade(rng, (0x44, 0xAA, 0x44), 20))


def finish_notebook_image(rng, image, strong):
    """Grey sensor noise, which makes every image unique; the strong set adds blur and JPEG."""
    from PIL import ImageChops, ImageFilter

    noise = gaussian_noise_image(rng, (100, 100), rng.uniform(4, 8) if strong else rng.uniform(1.5, 3.5))
    image = ImageChops.add(image, noise.convert("RGB"), scale=1.0, offset=-128)
    if strong:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))
        image = jpeg_round_trip(image, rng.randint(60, 90))
    return image


# ---- photo-like parts ("photo"): about 320 px, textured, lit, photographed


def draw_photo_product(rng, defect_type=None):
    """A photo-like part image of about 320 px; see ``draw_product_image``.

    What makes each class (at full resolution a person sees it at once):
    - Scratch: one thin (1-3 px), bright, smooth line of 25-150 px, straight or gently
      curved, at any angle (bare metal catching the light).
    - Crack: a dark, jagged polyline (1-3 px, tapering) with one to three branches.
    - Discoloration: one to four soft-edged, irregular stains (radius 5-24 px) whose colour
      differs from the part (rust, oil, residue, corrosion).
    - Pass: none of these; but good parts carry the same benign marks as defective ones:
      soft specular reflections, seams (a straight groove across the whole part) and
      machining lines (many faint parallel or concentric lines).

    The part is drawn in its own frame (centred, unrotated), then turned and moved onto the
    background; defects and reflections are layers clipped to the part.
    """
    import random

    from PIL import Image, ImageFilter

    size = (rng.randint(300, 340), rng.randint(300, 340))
    background = paint_photo_background(rng, size)
    shape, part_width, part_height, radius = choose_part_shape(rng, min(size))
    outline = paint_part_mask(rng, size, shape, part_width, part_height)
    part, base = paint_part_material(rng, size)
    paint_benign_marks(rng, part, base, shape, part_width, part_height)
    part, mask, centre = place_part(rng, part, outline, base, radius)
    image = Image.composite(part, cast_drop_shadow(rng, background, mask), mask)
    inner = mask.filter(ImageFilter.MinFilter(5))  # the part, its outline eroded a little
    for _ in range(rng.choice((0, 1, 1, 2))):
        image = paint_reflection(rng, image, inner, centre)
    # Lighting and camera come from their own stream, drawn before the defect: the same rng
    # state gives the same image with and without a defect, apart from the defect.
    camera = random.Random(rng.getrandbits(64))
    if defect_type is not None:
        painters = {"Scratch": paint_photo_scratch, "Crack": paint_photo_crack, "Discoloration": paint_photo_stains}
        image = painters[defect_type](rng, image, inner, centre, base)
    return photograph(camera, image)


def tint(rng, rgb, spread):
    """``rgb`` with each channel moved by up to ``spread`` (uniformly), clipped to 0-255."""
    return tuple(clamp_level(c + rng.uniform(-spread, spread)) for c in rgb)


def luminance(rgb):
    """The brightness a person sees in ``rgb`` (ITU-R BT.601 weights)."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def smooth_field(rng, size, cells, amplitude):
    """A low-frequency "L" field around 128 (+- ``amplitude``): uneven light, cast texture."""
    from PIL import Image

    small = Image.frombytes("L", (cells, cells), rng.randbytes(cells * cells))
    field = small.resize(size, Image.BICUBIC)
    return field.point([clamp_level(128 + amplitude * (v - 128) / 128) for v in range(256)])


def add_signed(image, field):
    """``image + (field - 128)`` on every channel, clipped: an "L" field lightens and darkens."""
    from PIL import Image, ImageChops

    return ImageChops.add(image, Image.merge("RGB", (field, field, field)), scale=1.0, offset=-128)


def paint_photo_background(rng, size):
    """A bench, mat or conveyor of one of seven colours, unevenly lit, with fine noise."""
    from PIL import Image

    colours = [(38, 38, 42), (92, 96, 92), (196, 196, 190), (52, 82, 62), (122, 108, 90), (222, 222, 218), (70, 74, 96)]
    background = Image.new("RGB", size, tint(rng, rng.choice(colours), 14))
    background = add_signed(background, smooth_field(rng, size, rng.randint(2, 5), rng.uniform(8, 30)))
    return add_signed(background, gaussian_noise_image(rng, size, rng.uniform(1, 5)))


def choose_part_shape(rng, short):
    """The part's shape (plate, disc, hex, bracket, bar) and its ``(width, height, radius)``
    in its own frame, scaled so that, turned any way, it stays within 0.47 of ``short``."""
    import math

    shape = rng.choice(("plate", "disc", "hex", "bracket", "bar"))
    if shape == "plate":
        width = rng.uniform(0.55, 0.8) * short
        height = width * rng.uniform(0.5, 1.0)
    elif shape == "bar":
        width, height = rng.uniform(0.78, 0.9) * short, rng.uniform(0.24, 0.34) * short
    elif shape == "bracket":
        width, height = rng.uniform(0.6, 0.78) * short, rng.uniform(0.5, 0.7) * short
    else:
        width = height = rng.uniform(0.58, 0.84) * short
    radius = math.hypot(width, height) / 2 if shape in ("plate", "bar", "bracket") else width / 2
    fit = min(1.0, 0.47 * short / radius)
    return shape, width * fit, height * fit, radius * fit


def part_box(size, width, height):
    """``(x0, y0, x1, y1)`` of a part of ``width`` x ``height`` centred in an image of ``size``."""
    cx, cy = size[0] / 2, size[1] / 2
    return cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2


def scaled(points, scale):
    """``points`` multiplied by ``scale`` (masks are drawn at twice the size)."""
    return [(x * scale, y * scale) for x, y in points]


def paint_part_mask(rng, size, shape, width, height):
    """The part's "L" mask in its own frame: 255 on the part, 0 off it and in its holes.

    Drawn at twice the size and reduced, for smooth edges. Each outline painter returns the
    part's holes as ``(x, y, radius)``.
    """
    from PIL import Image, ImageDraw

    scale = 2
    mask = Image.new("L", (size[0] * scale, size[1] * scale), 0)
    draw = ImageDraw.Draw(mask)
    if shape in ("plate", "bar"):
        holes = paint_plate_outline(rng, draw, scale, size, width, height, bar=shape == "bar")
    elif shape == "disc":
        holes = paint_disc_outline(rng, draw, scale, size, width, height)
    elif shape == "hex":
        holes = paint_hex_outline(rng, draw, scale, size, width, height)
    else:
        holes = paint_bracket_outline(rng, draw, scale, size, width, height)
    for hx, hy, hr in holes:
        draw.ellipse(scaled([(hx - hr, hy - hr), (hx + hr, hy + hr)], scale), fill=0)
    return mask.resize(size, Image.BOX)


def paint_plate_outline(rng, draw, scale, size, width, height, bar=False):
    """A rectangle with rounded corners; in 60 % of parts, holes near the corners (a plate)
    or near the two ends (a ``bar``)."""
    x0, y0, x1, y1 = part_box(size, width, height)
    corner = rng.uniform(0.0, 0.22) * min(width, height)
    draw.rounded_rectangle(scaled([(x0, y0), (x1, y1)], scale), radius=corner * scale, fill=255)
    if rng.random() >= 0.6:
        return []
    hr = rng.uniform(0.03, 0.055) * min(size)
    inset = max(corner, 0.12 * min(width, height), 2 * hr)
    if bar:
        return [(x0 + inset, size[1] / 2, hr), (x1 - inset, size[1] / 2, hr)]
    return [(x, y, hr) for x in (x0 + inset, x1 - inset) for y in (y0 + inset, y1 - inset)]


def paint_disc_outline(rng, draw, scale, size, width, height):
    """An ellipse (a circle for a disc); in 60 % of parts, a centre hole."""
    x0, y0, x1, y1 = part_box(size, width, height)
    draw.ellipse(scaled([(x0, y0), (x1, y1)], scale), fill=255)
    if rng.random() < 0.6:
        return [(size[0] / 2, size[1] / 2, width / 2 * rng.uniform(0.15, 0.32))]
    return []


def paint_hex_outline(rng, draw, scale, size, width, height):
    """A regular hexagon of diameter ``width`` at any turn; in 70 % of parts, a centre hole."""
    import math

    cx, cy = size[0] / 2, size[1] / 2
    r = width / 2
    start = rng.uniform(0, math.pi / 3)
    corners = [
        (cx + r * math.cos(start + k * math.pi / 3), cy + r * math.sin(start + k * math.pi / 3)) for k in range(6)
    ]
    draw.polygon(scaled(corners, scale), fill=255)
    if rng.random() < 0.7:
        return [(cx, cy, r * rng.uniform(0.2, 0.38))]
    return []


def paint_bracket_outline(rng, draw, scale, size, width, height):
    """An L of two arms, each 0.32-0.45 of the part, with a hole in each arm."""
    x0, y0, x1, y1 = part_box(size, width, height)
    arm_x, arm_y = width * rng.uniform(0.32, 0.45), height * rng.uniform(0.32, 0.45)
    corners = [(x0, y0), (x0 + arm_x, y0), (x0 + arm_x, y1 - arm_y), (x1, y1 - arm_y), (x1, y1), (x0, y1)]
    draw.polygon(scaled(corners, scale), fill=255)
    return [(x0 + arm_x / 2, y0 + arm_x * 0.7, arm_x * 0.18), (x1 - arm_y * 0.7, y1 - arm_y / 2, arm_y * 0.18)]


def paint_part_material(rng, size):
    """The part's surface in its own frame, filling the image: one of eight materials at a
    mid tone (so bright scratches and dark cracks both show), cast texture, brushed grain on
    metals (and 30 % of the others), fine noise. Returns the image and its base colour."""
    from PIL import Image

    colours = {
        "steel": (140, 143, 150),
        "aluminium": (168, 170, 174),
        "anodised": (62, 64, 74),
        "blue paint": (58, 80, 138),
        "green paint": (66, 106, 78),
        "brass": (158, 128, 72),
        "black plastic": (44, 44, 46),
        "grey plastic": (120, 120, 116),
    }
    material = rng.choice(tuple(colours))
    base = tint(rng, colours[material], 12)
    part = Image.new("RGB", size, base)
    part = add_signed(part, smooth_field(rng, size, rng.randint(3, 7), rng.uniform(4, 14)))
    if material in ("steel", "aluminium", "brass") or rng.random() < 0.3:
        # Brushed grain: 1-D noise stretched along the part's long axis.
        streaks = gaussian_noise_image(rng, (1, size[1]), rng.uniform(3, 9)).resize(size, Image.BILINEAR)
        part = add_signed(part, streaks)
    return add_signed(part, gaussian_noise_image(rng, size, rng.uniform(1, 4))), base


def paint_benign_marks(rng, part, base, shape, width, height):
    """Marks of good and defective parts alike, on ``part`` in its own frame: machining
    lines on half the parts, and zero to two seams."""
    from PIL import ImageDraw

    marks = ImageDraw.Draw(part)
    if rng.random() < 0.5:
        paint_machining_lines(rng, marks, base, shape, part.size, width, height)
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        paint_seam(rng, marks, base, part.size, width, height)


def paint_machining_lines(rng, draw, base, shape, size, width, height):
    """Many faint lines 3-8 px apart, a little lighter or darker than ``base``: concentric
    circles on a disc or hex, parallel lines across the part's box otherwise."""
    x0, y0, x1, y1 = part_box(size, width, height)
    cx, cy = size[0] / 2, size[1] / 2
    spacing, contrast = rng.uniform(3, 8), rng.uniform(5, 14)
    light = tuple(clamp_level(c + contrast) for c in base)
    dark = tuple(clamp_level(c - contrast) for c in base)
    if shape in ("disc", "hex"):
        r = spacing * 2
        while r < width / 2:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=rng.choice((light, dark)), width=1)
            r += spacing * rng.uniform(0.7, 1.3)
        return
    vertical = rng.random() < 0.5
    p = (x0 if vertical else y0) + rng.uniform(0, spacing)
    while p < (x1 if vertical else y1):
        colour = rng.choice((light, dark))
        draw.line((p, y0, p, y1) if vertical else (x0, p, x1, p), fill=colour, width=1)
        p += spacing * rng.uniform(0.7, 1.3)


def paint_seam(rng, draw, base, size, width, height):
    """A straight groove across the whole part's box, horizontal or vertical, in its middle
    60 %: a dark line 1-2 px wide with a lighter edge 2 px beside it."""
    x0, y0, x1, y1 = part_box(size, width, height)
    depth = rng.uniform(35, 70)
    dark = tuple(clamp_level(c - depth) for c in base)
    light = tuple(clamp_level(c + depth * 0.5) for c in base)
    if rng.random() < 0.5:
        y = rng.uniform(y0 + 0.2 * height, y1 - 0.2 * height)
        draw.line((x0, y, x1, y), fill=dark, width=rng.choice((1, 2)))
        draw.line((x0, y + 2, x1, y + 2), fill=light, width=1)
    else:
        x = rng.uniform(x0 + 0.2 * width, x1 - 0.2 * width)
        draw.line((x, y0, x, y1), fill=dark, width=rng.choice((1, 2)))
        draw.line((x + 2, y0, x + 2, y1), fill=light, width=1)


def place_part(rng, part, outline, base, radius):
    """Turns the part (image and mask) by any angle about its centre and moves it as far as
    its bounding ``radius`` leaves room for. Returns the part, its mask and its centre."""
    from PIL import Image

    width, height = part.size
    angle = rng.uniform(0, 360)
    dx, dy = rng.uniform(-1, 1), rng.uniform(-1, 1)
    room = max(0.0, 0.48 * min(width, height) - radius)
    shift = (dx * room, dy * room)
    part = part.rotate(angle, resample=Image.BICUBIC, translate=shift, fillcolor=base)
    mask = outline.rotate(angle, resample=Image.BILINEAR, translate=shift, fillcolor=0)
    return part, mask, (width / 2 + shift[0], height / 2 + shift[1])


def cast_drop_shadow(rng, background, mask):
    """``background`` darkened by 25-55 % under the part's ``mask``, offset by up to 8 px
    and softened."""
    from PIL import Image, ImageChops, ImageFilter

    offset = (rng.randint(-8, 8), rng.randint(-8, 8))
    shadow = ImageChops.offset(mask, *offset).filter(ImageFilter.GaussianBlur(rng.uniform(3, 8)))
    strength = rng.uniform(0.25, 0.55)
    shadow = shadow.point([clamp_level(255 - strength * v) for v in range(256)])
    return ImageChops.multiply(background, Image.merge("RGB", (shadow, shadow, shadow)))


def all_on_part(inner, points):
    """Whether every one of ``points`` lies on the part (``inner``: 255 on it)."""
    width, height = inner.size
    return all(0 <= x < width and 0 <= y < height and inner.getpixel((int(x), int(y))) == 255 for x, y in points)


def point_on_part(rng, inner, margin, fallback):
    """A random point at least ``margin`` px inside the part (``inner``: 255 on it), or
    ``fallback`` after 400 misses."""
    width, height = inner.size
    for _ in range(400):
        x, y = rng.uniform(0, width - 1), rng.uniform(0, height - 1)
        if inner.getpixel((int(x), int(y))) == 255 and all(
            inner.getpixel((int(min(width - 1, max(0, x + mx))), int(min(height - 1, max(0, y + my))))) == 255
            for mx, my in ((margin, 0), (-margin, 0), (0, margin), (0, -margin))
        ):
            return x, y
    return fallback


def overlay_on_part(image, inner, colour, alpha):
    """A flat ``colour`` laid over ``image`` through the "L" layer ``alpha``, only where the
    part is (``inner``)."""
    from PIL import Image, ImageChops

    clipped = ImageChops.multiply(alpha, inner)
    return Image.composite(Image.new("RGB", image.size, colour), image, clipped)


def paint_reflection(rng, image, inner, centre):
    """A specular reflection on the part: a broad (10-36 px), soft, bright band of 30-150 px
    at any angle."""
    import math

    from PIL import Image, ImageDraw, ImageFilter

    layer = Image.new("L", image.size, 0)
    x, y = point_on_part(rng, inner, 0, centre)
    length, width = rng.uniform(30, 150), rng.uniform(10, 36)
    a = rng.uniform(0, math.pi)
    ux, uy, vx, vy = math.cos(a), math.sin(a), -math.sin(a), math.cos(a)
    corners = [
        (x + ux * length / 2 * i + vx * width / 2 * j, y + uy * length / 2 * i + vy * width / 2 * j)
        for i, j in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    ImageDraw.Draw(layer).polygon(corners, fill=clamp_level(rng.uniform(90, 190)))
    soft = layer.filter(ImageFilter.GaussianBlur(rng.uniform(width * 0.4, width * 0.8)))
    return overlay_on_part(image, inner, (250, 250, 248), soft)


def scratch_path(rng, inner, centre):
    """Seven points of a smooth arc of 25-150 px (straight in half the cases), starting at
    least 6 px in from the part's edge and lying wholly on it; shorter after each miss (60 tries)."""
    import math

    length = rng.uniform(25, 150)
    bend = rng.uniform(-0.25, 0.25) if rng.random() < 0.5 else 0.0
    for _ in range(60):
        x, y = point_on_part(rng, inner, 6, centre)
        a = rng.uniform(0, 2 * math.pi)
        points = [(x, y)]
        for k in range(1, 7):  # a smooth arc from the start point
            heading = a + bend * k / 6
            x, y = x + length / 6 * math.cos(heading), y + length / 6 * math.sin(heading)
            points.append((x, y))
        if all_on_part(inner, points):
            break
        length = max(20.0, length * 0.95)
    return points


def paint_photo_scratch(rng, image, inner, centre, base):
    """A scratch: a thin (1-3 px), bright line along ``scratch_path``, at least 75 levels
    brighter than the part's ``base`` (and at least 215)."""
    from PIL import Image, ImageDraw

    layer = Image.new("L", image.size, 0)
    points = scratch_path(rng, inner, centre)
    width = rng.choice((1, 1, 1, 2, 2, 3))
    ImageDraw.Draw(layer).line(
        [c for p in points for c in p], fill=clamp_level(rng.uniform(200, 255)), width=width, joint="curve"
    )
    bright = clamp_level(max(luminance(base) + rng.uniform(75, 120), 215))
    return overlay_on_part(image, inner, tint(rng, (bright, bright, bright), 8), layer)


def crack_trunk(rng, inner, centre):
    """A jagged walk of 6-14 steps of 4-11 px, starting at least 10 px in from the part's edge
    and lying wholly on it; fewer steps after each miss (60 tries). Returns its points and last
    heading."""
    import math

    segments = rng.randint(6, 14)
    for _ in range(60):
        x, y = point_on_part(rng, inner, 10, centre)
        heading = rng.uniform(0, 2 * math.pi)
        trunk = [(x, y)]
        for _ in range(segments):
            heading += rng.gauss(0, 0.5)
            step = rng.uniform(4, 11)
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            trunk.append((x, y))
        if all_on_part(inner, trunk):
            break
        segments = max(4, segments - 1)
    return trunk, heading


def crack_branch(rng, start, heading):
    """A jagged walk of 2-6 steps of 3-9 px from ``start``, turned 0.5-1.3 rad (plus up to
    pi) from the trunk's ``heading``; it may run off the part."""
    import math

    branch_heading = heading + rng.choice((-1, 1)) * rng.uniform(0.5, 1.3) + rng.uniform(0, math.pi)
    x, y = start
    branch = [(x, y)]
    for _ in range(rng.randint(2, 6)):
        branch_heading += rng.gauss(0, 0.5)
        step = rng.uniform(3, 9)
        x, y = x + step * math.cos(branch_heading), y + step * math.sin(branch_heading)
        branch.append((x, y))
    return branch


def paint_photo_crack(rng, image, inner, centre, base):
    """A crack: a dark trunk (2-3 px, thinner in its second half) with one to three 1 px
    branches, at 10-35 % of ``base`` and at least 45 levels below it."""
    from PIL import Image, ImageDraw

    layer = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(layer)
    trunk, heading = crack_trunk(rng, inner, centre)
    width = rng.choice((2, 2, 3))
    half = len(trunk) // 2
    draw.line([c for p in trunk[: half + 1] for c in p], fill=255, width=width, joint="curve")
    draw.line([c for p in trunk[half:] for c in p], fill=255, width=max(1, width - 1), joint="curve")
    for _ in range(rng.randint(1, 3)):  # branches from a point of the trunk
        branch = crack_branch(rng, trunk[rng.randint(1, len(trunk) - 2)], heading)
        draw.line([c for p in branch for c in p], fill=255, width=1, joint="curve")
    darkness = rng.uniform(0.1, 0.35)
    return overlay_on_part(image, inner, tint(rng, tuple(min(c * darkness, c - 45) for c in base), 4), layer)


def stain_outline(rng, x, y, radius):
    """The 9-15 corners of an irregular blob around ``(x, y)``, each at 0.7-1.25 ``radius``."""
    import math

    vertices = rng.randint(9, 15)
    return [
        (
            x + radius * rng.uniform(0.7, 1.25) * math.cos(2 * math.pi * v / vertices),
            y + radius * rng.uniform(0.7, 1.25) * math.sin(2 * math.pi * v / vertices),
        )
        for v in range(vertices)
    ]


def paint_photo_stains(rng, image, inner, centre, base):
    """Discoloration: one to four soft-edged blobs (the first of radius 9-24 px, then 5-14)
    in the palette colour farthest from ``base`` of three drawn."""
    from PIL import Image, ImageDraw, ImageFilter

    palette = [(150, 72, 28), (40, 32, 24), (160, 170, 60), (196, 150, 40), (50, 150, 128), (120, 40, 90)]
    colour = max(rng.sample(palette, 3), key=lambda c: sum((a - b) ** 2 for a, b in zip(c, base, strict=True)))
    layer = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(layer)
    x, y = point_on_part(rng, inner, 18, centre)
    for k in range(rng.choice((1, 1, 2, 3, 4))):
        radius = rng.uniform(9, 24) if k == 0 else rng.uniform(5, 14)
        if k:
            x, y = point_on_part(rng, inner, 8, centre)
        draw.polygon(stain_outline(rng, x, y, radius), fill=clamp_level(rng.uniform(150, 220)))
    stain_colour = tint(rng, colour, 12)  # drawn before the blur radius: the images depend on that order
    return overlay_on_part(image, inner, stain_colour, layer.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 3.0))))


def photograph(rng, image):
    """The camera's view of the scene: light falling off across it, exposure and colour
    cast, then the sensor (blur, noise) and JPEG."""
    return photo_sensor(rng, expose(rng, light_falloff(rng, image)))


def light_falloff(rng, image):
    """``image`` under a light falling off across the scene in any direction: its gain goes
    from 0.6-0.9 to 0.95-1.15 (divided by 1.15; ``expose`` brightens it again)."""
    import math

    from PIL import Image, ImageChops

    a = rng.uniform(0, 2 * math.pi)
    low, high = rng.uniform(0.6, 0.9), rng.uniform(0.95, 1.15)
    ramp = Image.new("L", (8, 8))
    ramp.putdata(
        [
            clamp_level(
                255
                * (low + (high - low) * (0.5 + ((i % 8 - 3.5) * math.cos(a) + (i // 8 - 3.5) * math.sin(a)) / 9.9))
                / 1.15
            )
            for i in range(64)
        ]
    )
    gain = ramp.resize(image.size, Image.BILINEAR)
    return ImageChops.multiply(image, Image.merge("RGB", (gain, gain, gain)))


def expose(rng, image):
    """``image`` brightened 0.95-1.35 times (undoing the 1/1.15 of ``light_falloff``, give or
    take exposure), each channel by up to 8 % more or less (a colour cast)."""
    from PIL import Image

    brightness = rng.uniform(0.95, 1.35)
    cast = [brightness * rng.uniform(0.92, 1.08) for _ in range(3)]
    bands = [band.point([clamp_level(v * g) for v in range(256)]) for band, g in zip(image.split(), cast, strict=True)]
    return Image.merge("RGB", bands)


def photo_sensor(rng, image):
    """Blur on 60 % of images, colour noise on all, JPEG on 75 %."""
    from PIL import Image, ImageChops, ImageFilter

    if rng.random() < 0.6:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    sigma = rng.uniform(2, 7)
    noise = Image.merge("RGB", [gaussian_noise_image(rng, image.size, sigma) for _ in range(3)])
    image = ImageChops.add(image, noise, scale=1.0, offset=-128)
    if rng.random() < 0.75:
        image = jpeg_round_trip(image, rng.randint(60, 95))
    return image

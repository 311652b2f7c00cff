"""Synthetic product images: the notebook's look, a shifted variant, and photo-like parts.

KFP lightweight components carry only their own source, so every function here is
self-contained (imports inside, no module constants) and is copied into the components that
reach it (components/shipping.py).

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


def draw_notebook_product(rng, defect_type=None, strong=False):
    """The notebook's look (DESIGN §4), varied per image; see ``draw_product_image``.

    The notebook draws a 60x60 product at (20, 20); a red scratch from (30, 30) to (70, 70)
    of width 2 (length 0.94 of the product side); a white crack from (30, 50) to (70, 45)
    of width 3 (0.67 of the side); a green spot of radius 10. Here those become ranges
    around them, at any angle and anywhere on the product; ``strong`` widens every range
    beyond the standard one and adds blur and JPEG.
    """
    import io
    import math
    import random

    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    def jitter(value, spread):
        return value + rng.randint(-spread, spread)

    def shade(rgb, spread):
        return tuple(max(0, min(255, jitter(c, spread))) for c in rgb)

    image = Image.new("RGB", (100, 100), shade((0xDD, 0xDD, 0xDD), 20 if strong else 6))
    draw = ImageDraw.Draw(image)

    # The product rectangle: square and 54-66 px (standard); 42-76 px, up to 1.35:1 (strong).
    if strong:
        side = rng.randint(42, 76)
        aspect = rng.uniform(1.0, 1.35)
        width, height = (side, round(side / aspect)) if rng.random() < 0.5 else (round(side / aspect), side)
        spread = 12
    else:
        width = height = rng.randint(54, 66)
        spread = 5
    left = max(2, min(98 - width, jitter(50 - width // 2, spread)))
    top = max(2, min(98 - height, jitter(50 - height // 2, spread)))
    draw.rectangle((left, top, left + width, top + height), fill=shade((0x55, 0x55, 0xAA), 30 if strong else 12))
    side = min(width, height)
    # Noise, blur and JPEG come from their own stream, drawn before the defect: the same
    # rng state gives the same image with and without a defect, apart from the defect.
    finish = random.Random(rng.getrandbits(64))

    def place_line(length, margin):
        """Endpoints of a segment of ``length`` at a random angle, inside the product."""
        for _ in range(50):
            angle = rng.uniform(0, math.pi)
            dx, dy = length / 2 * math.cos(angle), length / 2 * math.sin(angle)
            x_room, y_room = width / 2 - margin - abs(dx), height / 2 - margin - abs(dy)
            if x_room >= 0 and y_room >= 0:
                cx = left + width / 2 + rng.uniform(-x_room, x_room)
                cy = top + height / 2 + rng.uniform(-y_room, y_room)
                return (cx - dx, cy - dy), (cx + dx, cy + dy)
            length *= 0.9
        raise RuntimeError("no room for the defect")  # unreachable for these sizes

    if defect_type == "Scratch":
        length = side * (rng.uniform(0.22, 1.0) if strong else rng.uniform(0.4, 0.95))
        line_width = rng.choice((1, 2, 3, 4) if strong else (1, 2, 2, 3))
        start, end = place_line(length, margin=2 + line_width / 2)
        draw.line(start + end, fill=shade((0xFF, 0x33, 0x33), 20), width=line_width)
    elif defect_type == "Crack":
        length = side * (rng.uniform(0.22, 0.9) if strong else rng.uniform(0.35, 0.75))
        line_width = rng.choice((1, 2, 3, 4, 5) if strong else (2, 3, 3, 4))
        start, end = place_line(length, margin=2 + line_width / 2)
        points = [start, end]
        if strong and rng.random() < 0.5:  # a kinked crack: the middle point pushed sideways
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            nx, ny = -(end[1] - start[1]) / length, (end[0] - start[0]) / length
            bend = rng.uniform(-0.15, 0.15) * length
            points = [start, (mx + nx * bend, my + ny * bend), end]
        fill = shade((0xFF, 0xFF, 0xFF), 12)
        draw.line([c for p in points for c in p], fill=fill, width=line_width, joint="curve")
    elif defect_type == "Discoloration":
        spots = 2 if strong and rng.random() < 0.3 else 1
        for _ in range(spots):
            radius = rng.uniform(4, 15) if strong else rng.uniform(6, 12)
            aspect = rng.uniform(0.6, 1.6) if strong else rng.uniform(0.8, 1.25)
            rx, ry = min(radius * aspect, width / 2 - 3), min(radius / aspect, height / 2 - 3)
            cx = rng.uniform(left + rx + 2, left + width - rx - 2)
            cy = rng.uniform(top + ry + 2, top + height - ry - 2)
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=shade((0x44, 0xAA, 0x44), 20))

    # Grey sensor noise makes every image unique; the strong set adds blur and JPEG.
    noise = gaussian_noise_image(finish, (100, 100), finish.uniform(4, 8) if strong else finish.uniform(1.5, 3.5))
    image = ImageChops.add(image, noise.convert("RGB"), scale=1.0, offset=-128)
    if strong:
        image = image.filter(ImageFilter.GaussianBlur(finish.uniform(0, 0.8)))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=finish.randint(60, 90))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


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
    """
    import io
    import math
    import random

    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    W, H = rng.randint(300, 340), rng.randint(300, 340)
    short = min(W, H)

    def clamp(v):
        return max(0, min(255, int(round(v))))

    def tint(rgb, spread):
        return tuple(clamp(c + rng.uniform(-spread, spread)) for c in rgb)

    def luminance(rgb):
        return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]

    def smooth_field(cells, amplitude):
        """Low-frequency "L" field around 128 (+- amplitude): uneven light, cast texture."""
        small = Image.frombytes("L", (cells, cells), rng.randbytes(cells * cells))
        field = small.resize((W, H), Image.BICUBIC)
        return field.point([clamp(128 + amplitude * (v - 128) / 128) for v in range(256)])

    def add_signed(image, field):
        """image + (field - 128) on every channel, clipped."""
        return ImageChops.add(image, Image.merge("RGB", (field, field, field)), scale=1.0, offset=-128)

    # ---- background: a bench, mat or conveyor, unevenly lit
    background_colour = tint(
        rng.choice(
            [(38, 38, 42), (92, 96, 92), (196, 196, 190), (52, 82, 62), (122, 108, 90), (222, 222, 218), (70, 74, 96)]
        ),
        14,
    )
    background = Image.new("RGB", (W, H), background_colour)
    background = add_signed(background, smooth_field(rng.randint(2, 5), rng.uniform(8, 30)))
    background = add_signed(background, gaussian_noise_image(rng, (W, H), rng.uniform(1, 5)))

    # ---- the part, drawn in its own frame (centred, unrotated), then rotated and moved
    shape = rng.choice(("plate", "disc", "hex", "bracket", "bar"))
    cx, cy = W / 2, H / 2
    scale = 2  # masks are drawn at 2x and reduced, for smooth edges
    mask_big = Image.new("L", (W * scale, H * scale), 0)
    draw_mask = ImageDraw.Draw(mask_big)

    def s(points):
        return [(x * scale, y * scale) for x, y in points]

    if shape == "plate":
        pw = rng.uniform(0.55, 0.8) * short
        ph = pw * rng.uniform(0.5, 1.0)
    elif shape == "bar":
        pw, ph = rng.uniform(0.78, 0.9) * short, rng.uniform(0.24, 0.34) * short
    elif shape == "bracket":
        pw, ph = rng.uniform(0.6, 0.78) * short, rng.uniform(0.5, 0.7) * short
    else:
        pw = ph = rng.uniform(0.58, 0.84) * short
    # The rotated part must stay in the frame: its bounding radius fits within 0.47 of the side.
    radius = math.hypot(pw, ph) / 2 if shape in ("plate", "bar", "bracket") else pw / 2
    fit = min(1.0, 0.47 * short / radius)
    pw, ph, radius = pw * fit, ph * fit, radius * fit
    x0, y0, x1, y1 = cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2

    holes = []
    if shape in ("plate", "bar"):
        corner = rng.uniform(0.0, 0.22) * min(pw, ph)
        draw_mask.rounded_rectangle(s([(x0, y0), (x1, y1)]), radius=corner * scale, fill=255)
        if rng.random() < 0.6:
            hr = rng.uniform(0.03, 0.055) * short
            inset = max(corner, 0.12 * min(pw, ph), 2 * hr)
            if shape == "bar":
                holes = [(x0 + inset, cy, hr), (x1 - inset, cy, hr)]
            else:
                holes = [(x, y, hr) for x in (x0 + inset, x1 - inset) for y in (y0 + inset, y1 - inset)]
    elif shape == "disc":
        draw_mask.ellipse(s([(x0, y0), (x1, y1)]), fill=255)
        if rng.random() < 0.6:
            holes = [(cx, cy, pw / 2 * rng.uniform(0.15, 0.32))]
    elif shape == "hex":
        r = pw / 2
        start = rng.uniform(0, math.pi / 3)
        draw_mask.polygon(
            s(
                [
                    (cx + r * math.cos(start + k * math.pi / 3), cy + r * math.sin(start + k * math.pi / 3))
                    for k in range(6)
                ]
            ),
            fill=255,
        )
        if rng.random() < 0.7:
            holes = [(cx, cy, r * rng.uniform(0.2, 0.38))]
    else:  # bracket: an L of two arms
        arm_x, arm_y = pw * rng.uniform(0.32, 0.45), ph * rng.uniform(0.32, 0.45)
        draw_mask.polygon(
            s([(x0, y0), (x0 + arm_x, y0), (x0 + arm_x, y1 - arm_y), (x1, y1 - arm_y), (x1, y1), (x0, y1)]), fill=255
        )
        holes = [(x0 + arm_x / 2, y0 + arm_x * 0.7, arm_x * 0.18), (x1 - arm_y * 0.7, y1 - arm_y / 2, arm_y * 0.18)]
    for hx, hy, hr in holes:
        draw_mask.ellipse(s([(hx - hr, hy - hr), (hx + hr, hy + hr)]), fill=0)
    local_mask = mask_big.resize((W, H), Image.BOX)

    # Material: base colour (mid tones, so bright scratches and dark cracks both show) + texture.
    material = rng.choice(
        ("steel", "aluminium", "anodised", "blue paint", "green paint", "brass", "black plastic", "grey plastic")
    )
    base = tint(
        {
            "steel": (140, 143, 150),
            "aluminium": (168, 170, 174),
            "anodised": (62, 64, 74),
            "blue paint": (58, 80, 138),
            "green paint": (66, 106, 78),
            "brass": (158, 128, 72),
            "black plastic": (44, 44, 46),
            "grey plastic": (120, 120, 116),
        }[material],
        12,
    )
    part = Image.new("RGB", (W, H), base)
    part = add_signed(part, smooth_field(rng.randint(3, 7), rng.uniform(4, 14)))
    if material in ("steel", "aluminium", "brass") or rng.random() < 0.3:
        # Brushed grain: 1-D noise stretched along the part's long axis.
        streaks = gaussian_noise_image(rng, (1, H), rng.uniform(3, 9)).resize((W, H), Image.BILINEAR)
        part = add_signed(part, streaks)
    part = add_signed(part, gaussian_noise_image(rng, (W, H), rng.uniform(1, 4)))

    # Benign marks, drawn on good and defective parts alike (in the part's frame).
    marks = ImageDraw.Draw(part)
    if rng.random() < 0.5:  # machining lines: many faint parallel (or concentric) lines
        spacing, contrast = rng.uniform(3, 8), rng.uniform(5, 14)
        light = tuple(clamp(c + contrast) for c in base)
        dark = tuple(clamp(c - contrast) for c in base)
        if shape in ("disc", "hex"):
            r = spacing * 2
            while r < pw / 2:
                marks.ellipse((cx - r, cy - r, cx + r, cy + r), outline=rng.choice((light, dark)), width=1)
                r += spacing * rng.uniform(0.7, 1.3)
        else:
            vertical = rng.random() < 0.5
            p = (x0 if vertical else y0) + rng.uniform(0, spacing)
            while p < (x1 if vertical else y1):
                colour = rng.choice((light, dark))
                marks.line((p, y0, p, y1) if vertical else (x0, p, x1, p), fill=colour, width=1)
                p += spacing * rng.uniform(0.7, 1.3)
    for _ in range(rng.choice((0, 0, 1, 1, 2))):  # seams: a straight groove across the whole part
        depth = rng.uniform(35, 70)
        dark = tuple(clamp(c - depth) for c in base)
        light = tuple(clamp(c + depth * 0.5) for c in base)
        if rng.random() < 0.5:
            y = rng.uniform(y0 + 0.2 * ph, y1 - 0.2 * ph)
            marks.line((x0, y, x1, y), fill=dark, width=rng.choice((1, 2)))
            marks.line((x0, y + 2, x1, y + 2), fill=light, width=1)
        else:
            x = rng.uniform(x0 + 0.2 * pw, x1 - 0.2 * pw)
            marks.line((x, y0, x, y1), fill=dark, width=rng.choice((1, 2)))
            marks.line((x + 2, y0, x + 2, y1), fill=light, width=1)
    # Part shading: one side lit, the other in shade (in the part's frame: it turns with it).
    angle_deg = rng.uniform(0, 360)
    dx, dy = rng.uniform(-1, 1), rng.uniform(-1, 1)
    room = max(0.0, 0.48 * short - radius)
    shift = (dx * room, dy * room)

    def place(image, fill, resample=Image.BICUBIC):
        return image.rotate(angle_deg, resample=resample, translate=shift, fillcolor=fill)

    part = place(part, base)
    mask = place(local_mask, 0, Image.BILINEAR)

    # Drop shadow on the background, then the part on top.
    offset = (rng.randint(-8, 8), rng.randint(-8, 8))
    shadow = ImageChops.offset(mask, *offset).filter(ImageFilter.GaussianBlur(rng.uniform(3, 8)))
    strength = rng.uniform(0.25, 0.55)
    shadow = shadow.point([clamp(255 - strength * v) for v in range(256)])
    background = ImageChops.multiply(background, Image.merge("RGB", (shadow, shadow, shadow)))
    image = Image.composite(part, background, mask)

    # ---- defects and reflections: layers clipped to the part (the mask eroded a little)
    inner = mask.filter(ImageFilter.MinFilter(5))

    def inside(points):
        return all(0 <= x < W and 0 <= y < H and inner.getpixel((int(x), int(y))) == 255 for x, y in points)

    def point_on_part(margin):
        """A random point at least ``margin`` px inside the part (its outline eroded)."""
        for _ in range(400):
            x, y = rng.uniform(0, W - 1), rng.uniform(0, H - 1)
            if inner.getpixel((int(x), int(y))) == 255 and all(
                inner.getpixel((int(min(W - 1, max(0, x + mx))), int(min(H - 1, max(0, y + my))))) == 255
                for mx, my in ((margin, 0), (-margin, 0), (0, margin), (0, -margin))
            ):
                return x, y
        return cx + shift[0], cy + shift[1]

    def overlay(colour, alpha_layer):
        """Lays a flat colour over the image through alpha_layer, only where the part is."""
        nonlocal image
        clipped = ImageChops.multiply(alpha_layer, inner)
        image = Image.composite(Image.new("RGB", (W, H), colour), image, clipped)

    for _ in range(rng.choice((0, 1, 1, 2))):  # specular reflections: broad, soft, bright
        layer = Image.new("L", (W, H), 0)
        x, y = point_on_part(0)
        length, width = rng.uniform(30, 150), rng.uniform(10, 36)
        a = rng.uniform(0, math.pi)
        ux, uy, vx, vy = math.cos(a), math.sin(a), -math.sin(a), math.cos(a)
        corners = [
            (x + ux * length / 2 * i + vx * width / 2 * j, y + uy * length / 2 * i + vy * width / 2 * j)
            for i, j in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
        ImageDraw.Draw(layer).polygon(corners, fill=clamp(rng.uniform(90, 190)))
        overlay((250, 250, 248), layer.filter(ImageFilter.GaussianBlur(rng.uniform(width * 0.4, width * 0.8))))

    # Lighting and camera come from their own stream, drawn before the defect: the same rng
    # state gives the same image with and without a defect, apart from the defect.
    camera = random.Random(rng.getrandbits(64))
    surface = luminance(base)
    if defect_type == "Scratch":
        layer = Image.new("L", (W, H), 0)
        length = rng.uniform(25, 150)
        bend = rng.uniform(-0.25, 0.25) if rng.random() < 0.5 else 0.0
        for _ in range(60):  # the whole scratch on the part; shorter after each miss
            x, y = point_on_part(6)
            a = rng.uniform(0, 2 * math.pi)
            points = [(x, y)]
            for k in range(1, 7):  # a smooth arc from the start point
                heading = a + bend * k / 6
                x, y = x + length / 6 * math.cos(heading), y + length / 6 * math.sin(heading)
                points.append((x, y))
            if inside(points):
                break
            length = max(20.0, length * 0.95)
        width = rng.choice((1, 1, 1, 2, 2, 3))
        ImageDraw.Draw(layer).line(
            [c for p in points for c in p], fill=clamp(rng.uniform(200, 255)), width=width, joint="curve"
        )
        bright = clamp(max(surface + rng.uniform(75, 120), 215))
        overlay(tint((bright, bright, bright), 8), layer)
    elif defect_type == "Crack":
        layer = Image.new("L", (W, H), 0)
        draw_crack = ImageDraw.Draw(layer)
        segments = rng.randint(6, 14)
        for _ in range(60):  # the whole trunk on the part (branches may run off it)
            x, y = point_on_part(10)
            heading = rng.uniform(0, 2 * math.pi)
            trunk = [(x, y)]
            for _ in range(segments):
                heading += rng.gauss(0, 0.5)
                step = rng.uniform(4, 11)
                x, y = x + step * math.cos(heading), y + step * math.sin(heading)
                trunk.append((x, y))
            if inside(trunk):
                break
            segments = max(4, segments - 1)
        width = rng.choice((2, 2, 3))
        half = len(trunk) // 2
        draw_crack.line([c for p in trunk[: half + 1] for c in p], fill=255, width=width, joint="curve")
        draw_crack.line([c for p in trunk[half:] for c in p], fill=255, width=max(1, width - 1), joint="curve")
        for _ in range(rng.randint(1, 3)):  # branches from a point of the trunk
            bx, by = trunk[rng.randint(1, len(trunk) - 2)]
            branch_heading = heading + rng.choice((-1, 1)) * rng.uniform(0.5, 1.3) + rng.uniform(0, math.pi)
            branch = [(bx, by)]
            for _ in range(rng.randint(2, 6)):
                branch_heading += rng.gauss(0, 0.5)
                step = rng.uniform(3, 9)
                bx, by = bx + step * math.cos(branch_heading), by + step * math.sin(branch_heading)
                branch.append((bx, by))
            draw_crack.line([c for p in branch for c in p], fill=255, width=1, joint="curve")
        darkness = rng.uniform(0.1, 0.35)  # and at least 45 levels below the surface
        overlay(tint(tuple(min(c * darkness, c - 45) for c in base), 4), layer)
    elif defect_type == "Discoloration":
        palette = [(150, 72, 28), (40, 32, 24), (160, 170, 60), (196, 150, 40), (50, 150, 128), (120, 40, 90)]
        colour = max(rng.sample(palette, 3), key=lambda c: sum((a - b) ** 2 for a, b in zip(c, base, strict=True)))
        layer = Image.new("L", (W, H), 0)
        draw_stain = ImageDraw.Draw(layer)
        x, y = point_on_part(18)
        for k in range(rng.choice((1, 1, 2, 3, 4))):
            r = rng.uniform(9, 24) if k == 0 else rng.uniform(5, 14)
            if k:
                x, y = point_on_part(8)
            vertices = rng.randint(9, 15)
            outline = [
                (
                    x + r * rng.uniform(0.7, 1.25) * math.cos(2 * math.pi * v / vertices),
                    y + r * rng.uniform(0.7, 1.25) * math.sin(2 * math.pi * v / vertices),
                )
                for v in range(vertices)
            ]
            draw_stain.polygon(outline, fill=clamp(rng.uniform(150, 220)))
        overlay(tint(colour, 12), layer.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 3.0))))

    # ---- lighting and camera
    # A light falling off across the scene in any direction: gain from `low` to `high`.
    a = camera.uniform(0, 2 * math.pi)
    low, high = camera.uniform(0.6, 0.9), camera.uniform(0.95, 1.15)
    ramp = Image.new("L", (8, 8))
    ramp.putdata(
        [
            clamp(
                255
                * (low + (high - low) * (0.5 + ((i % 8 - 3.5) * math.cos(a) + (i // 8 - 3.5) * math.sin(a)) / 9.9))
                / 1.15
            )
            for i in range(64)
        ]
    )
    gain = ramp.resize((W, H), Image.BILINEAR)
    image = ImageChops.multiply(image, Image.merge("RGB", (gain, gain, gain)))
    brightness = camera.uniform(0.95, 1.35)  # undoes the 1/1.15 of the gain, give or take exposure
    cast = [brightness * camera.uniform(0.92, 1.08) for _ in range(3)]
    image = Image.merge(
        "RGB", [band.point([clamp(v * g) for v in range(256)]) for band, g in zip(image.split(), cast, strict=True)]
    )
    if camera.random() < 0.6:
        image = image.filter(ImageFilter.GaussianBlur(camera.uniform(0.3, 0.9)))
    sigma = camera.uniform(2, 7)
    noise = Image.merge("RGB", [gaussian_noise_image(camera, (W, H), sigma) for _ in range(3)])
    image = ImageChops.add(image, noise, scale=1.0, offset=-128)
    if camera.random() < 0.75:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=camera.randint(60, 95))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image

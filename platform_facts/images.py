"""How image files are read where Gemini reads them, shared by the components' report
thumbnails and the local Vertex AI's model (one function, shipped with ``additional_funcs``)."""


def eight_bit(image):
    """``image`` with 8-bit values: 16-bit and float greyscale scaled into an "L" image.

    Machine-vision cameras save 16-bit greyscale PNGs (Pillow's modes I;16 and I), which
    Gemini reads; Pillow's own ``convert`` clips their values at 255, so a dark part came
    out white. 16-bit values are divided by 256 (an "I" image whose values all fit in
    8 bits is kept as it is), floats in 0..1 multiplied by 255. Other modes are returned
    unchanged.
    """
    if not (image.mode.startswith("I;16") or image.mode in ("I", "F")):
        return image
    wide = image.convert("F")
    high = wide.getextrema()[1]
    if image.mode.startswith("I;16") or high > 255:
        return wide.point(lambda value: value / 256).convert("L")
    scale = 255 if image.mode == "F" and high <= 1 else 1
    return wide.point(lambda value: value * scale).convert("L")

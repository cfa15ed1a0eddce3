#!/usr/bin/python3
"""Image decoding and preprocessing against references: PIL for decoding (with EXIF
orientation) and upsampling, numpy re-implementations of OpenCV's resize conventions for the
rest; resizes within 1 pixel level (of 255), everything else within float rounding. Real
photos from Debian's scikit-image (astronaut, coffee, chelsea, camera, page) saved as JPEG and
PNG. Bad images get one clear error line and a documented exit status.

    prep_reference.py --tool BUILD/tests/prep_tool --work DIR
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
from checks import Checks
from PIL import Image, ImageOps

SK = "/usr/lib/python3/dist-packages/skimage/data"


def lin_coords(n_in, n_out):
    fx = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    sx = np.floor(fx).astype(int)
    a = fx - sx
    a[sx < 0] = 0
    sx[sx < 0] = 0
    hi = sx >= n_in - 1
    a[hi] = 0
    sx[hi] = n_in - 1
    return sx, a


def ref_bilinear(img, w, h):  # img H x W x C float
    sx, ax = lin_coords(img.shape[1], w)
    sy, ay = lin_coords(img.shape[0], h)
    sx1 = np.minimum(sx + 1, img.shape[1] - 1)
    sy1 = np.minimum(sy + 1, img.shape[0] - 1)
    top = img[sy][:, sx] * (1 - ax[None, :, None]) + img[sy][:, sx1] * ax[None, :, None]
    bot = img[sy1][:, sx] * (1 - ax[None, :, None]) + img[sy1][:, sx1] * ax[None, :, None]
    return top * (1 - ay[:, None, None]) + bot * ay[:, None, None]


def ref_nearest(img, w, h):
    sx = np.minimum(np.floor(np.arange(w) * (img.shape[1] / w)).astype(int), img.shape[1] - 1)
    sy = np.minimum(np.floor(np.arange(h) * (img.shape[0] / h)).astype(int), img.shape[0] - 1)
    return img[sy][:, sx]


def area_matrix(n_in, n_out):
    s = n_in / n_out
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        a, b = o * s, (o + 1) * s
        for i in range(int(np.floor(a)), min(int(np.ceil(b)), n_in)):
            m[o, i] = (min(b, i + 1) - max(a, i)) / s
    return m


def ref_area(img, w, h):
    mx, my = area_matrix(img.shape[1], w), area_matrix(img.shape[0], h)
    rows = np.tensordot(my, img, axes=(1, 0))                       # h x W_in x C
    return np.tensordot(rows, mx, axes=(1, 1)).transpose(0, 2, 1)   # h x w x C


def to_hwc(a):  # tool output [1, C, H, W] -> H x W x C
    return a[0].transpose(1, 2, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    w = a.work
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    photos = {}
    for name in ["astronaut", "coffee", "chelsea"]:
        im = Image.open(f"{SK}/{name}.png").convert("RGB")
        im.save(f"{w}/{name}.jpg", quality=92)
        im.save(f"{w}/{name}.png")
        photos[name] = im
    Image.open(f"{SK}/camera.png").convert("L").save(f"{w}/camera.jpg", quality=90)
    for o in (3, 6, 8):  # EXIF orientations: 180, 90 CW, 90 CCW
        exif = Image.Exif()
        exif[0x0112] = o
        photos["chelsea"].save(f"{w}/chelsea_exif{o}.jpg", quality=92, exif=exif.tobytes())

    check = Checks()

    def tool(img, *steps, expect=0):
        out = f"{w}/out.npy"
        r = subprocess.run([a.tool, img, out] + list(steps), capture_output=True, text=True, errors="replace")
        if r.returncode != expect:
            print(f"  prep_tool {img} {steps}: exit {r.returncode}: {r.stderr.strip()}")
            return None
        return (np.load(out) if expect == 0 else r.stderr)

    # decoding
    for name in ["astronaut", "coffee", "chelsea"]:
        for ext in ["jpg", "png"]:
            got = tool(f"{w}/{name}.{ext}")
            ref = np.asarray(Image.open(f"{w}/{name}.{ext}").convert("RGB"), np.float32)
            d = np.abs(to_hwc(got) - ref).max() if got is not None else 1e9
            check(f"decode {name}.{ext} vs PIL", d <= 1, f"(max diff {d})")
    got = tool(f"{w}/camera.jpg", "--gray")
    ref = np.asarray(Image.open(f"{w}/camera.jpg").convert("L"), np.float32)
    check("decode gray JPEG vs PIL", got is not None and np.abs(got[0, 0] - ref).max() <= 1)
    for o in (3, 6, 8):
        got = tool(f"{w}/chelsea_exif{o}.jpg")
        ref = np.asarray(ImageOps.exif_transpose(Image.open(f"{w}/chelsea_exif{o}.jpg")).convert("RGB"), np.float32)
        ok = got is not None and to_hwc(got).shape == ref.shape and np.abs(to_hwc(got) - ref).max() <= 1
        check(f"EXIF orientation {o} vs PIL exif_transpose", ok, f"{None if got is None else to_hwc(got).shape} vs {ref.shape}")

    # DCT-scaled decoding: the smallest libjpeg scale that stays at least the size asked for;
    # PIL's draft mode uses the same libjpeg scaling
    for (mw, mh), want in [((300, 200), (300, 200)), ((150, 100), (150, 100)), ((140, 90), (150, 100)),
                           ((0, 0), (600, 400))]:
        got = tool(f"{w}/coffee.jpg", "--min", f"{mw}x{mh}")
        ref_im = Image.open(f"{w}/coffee.jpg")
        ref_im.draft("RGB", want)
        ref = np.asarray(ref_im.convert("RGB"), np.float32)
        ok = got is not None and to_hwc(got).shape == ref.shape and ref.shape[:2] == (want[1], want[0]) \
            and np.abs(to_hwc(got) - ref).max() <= 1
        check(f"DCT-scaled decode for at least {mw}x{mh} gives {want[0]}x{want[1]} like PIL draft", ok)
    got = tool(f"{w}/coffee.jpg", "--min", "301x10")  # libjpeg-turbo also scales by 5/8: 375x250
    check("DCT scaling takes the M/8 scales too", got is not None and to_hwc(got).shape[:2] == (250, 375),
          None if got is None else to_hwc(got).shape)
    # stored 451x300, upright 300x451: at least 100x200 upright is 1/2 of the stored image (sizes round up)
    got = tool(f"{w}/chelsea_exif6.jpg", "--min", "100x200")
    check("DCT scaling respects EXIF rotation", got is not None and to_hwc(got).shape[:2] == (226, 150),
          None if got is None else to_hwc(got).shape)

    src = np.asarray(photos["coffee"], np.float32)  # 400 x 600
    png = f"{w}/coffee.png"
    for (tw, th) in [(224, 224), (300, 170), (900, 650)]:
        got = tool(png, f"resize={tw}x{th}:bilinear")
        d = np.abs(to_hwc(got) - ref_bilinear(src, tw, th)).max()
        check(f"bilinear {tw}x{th} vs OpenCV rule", d <= 1e-3, f"(max diff {d:.2e})")
        got = tool(png, f"resize={tw}x{th}:nearest")
        check(f"nearest {tw}x{th} vs OpenCV rule", np.abs(to_hwc(got) - ref_nearest(src, tw, th)).max() == 0)
    # upsampling: PIL's bilinear is the same filter there; PIL rounds to 8 bits
    got = tool(png, "resize=900x650:bilinear")
    pil = np.asarray(photos["coffee"].resize((900, 650), Image.BILINEAR), np.float32)
    d = np.abs(to_hwc(got) - pil)[2:-2, 2:-2].max()
    check("bilinear upsampling vs PIL (1 level)", d <= 1.0, f"(max diff {d:.2f})")
    for (tw, th) in [(300, 200), (224, 224), (150, 100)]:
        got = tool(png, f"resize={tw}x{th}:area")
        d = np.abs(to_hwc(got) - ref_area(src, tw, th)).max()
        check(f"area {tw}x{th} vs box-average rule", d <= 1e-2, f"(max diff {d:.2e})")
    got = tool(png, "resize=150x100:area")
    pil = np.asarray(photos["coffee"].reduce(4), np.float32)
    d = np.abs(to_hwc(got) - pil).max()
    check("area by 4 vs PIL reduce (1 level)", d <= 1.0, f"(max diff {d:.2f})")

    # classification pipeline: shorter side 256, centre crop 224, BGR, mean/std, NCHW and NHWC
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    got = tool(png, "shorter=256:bilinear", "crop=224x224", "swaprb",
               "norm=%g,%g,%g/%g,%g,%g" % (*mean, *std))
    r = ref_bilinear(src, 384, 256)  # 600x400 -> 384x256
    y0, x0 = (256 - 224) // 2, (384 - 224) // 2
    r = r[y0:y0 + 224, x0:x0 + 224][:, :, ::-1]
    r = (r - np.array(mean)) / np.array(std)
    check("shorter side + crop + BGR + normalize", np.abs(to_hwc(got) - r).max() <= 1e-4,
          f"(max diff {np.abs(to_hwc(got) - r).max():.2e})")
    got = tool(png, "--nhwc", "resize=64x32:nearest", "scale=0.00392156862745098")
    check("NHWC layout + scale", np.abs(got[0] - ref_nearest(src, 64, 32) / 255.0).max() <= 1e-6)
    got = tool(png, "fit=320x320:bilinear:114")
    r = np.full((320, 320, 3), 114.0)
    r[53:53 + 213] = ref_bilinear(src, 320, 213)  # 600x400 -> 320x213, centred
    check("fit + pad", np.abs(to_hwc(got) - r).max() <= 1e-3, f"(max diff {np.abs(to_hwc(got) - r).max():.2e})")

    # bad images: one line naming the file, documented exit status
    raw = open(f"{w}/astronaut.jpg", "rb").read()
    open(f"{w}/empty.jpg", "wb").close()
    open(f"{w}/truncated.jpg", "wb").write(raw[: len(raw) // 3])
    bad = bytearray(raw)
    for i in range(len(bad) // 2, len(bad) // 2 + 400):
        bad[i] = 0xFF if i % 2 else 0x00
    open(f"{w}/corrupt.jpg", "wb").write(bytes(bad))
    open(f"{w}/notes.jpg", "w").write("not an image\n")
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)).save(f"{w}/deep.png")
    photos["chelsea"].convert("CMYK").save(f"{w}/cmyk.jpg")
    cases = [("empty file", "empty.jpg", 8, "empty"), ("truncated JPEG", "truncated.jpg", 8, "JPEG"),
             ("corrupt JPEG", "corrupt.jpg", 8, "JPEG"), ("not an image", "notes.jpg", 8, "not a JPEG or PNG"),
             ("16-bit PNG", "deep.png", 5, "16-bit"), ("CMYK JPEG", "cmyk.jpg", 5, "CMYK"),
             ("missing file", "nope.jpg", 3, "cannot open")]
    for what, f, code, needle in cases:
        err = tool(f"{w}/{f}", expect=code)
        lines = [l for l in (err or "").splitlines() if l.strip()]
        check(f"bad image: {what}", err is not None and len(lines) == 1 and f in lines[0] and needle in lines[0],
              lines[0] if lines else "")
    err = tool(f"{w}/chelsea.png", "crop=500x500", expect=8)
    check("image smaller than the crop", err is not None and "smaller than the 500x500 crop" in err, (err or "").strip())
    # the fused 8-bit path (resize, crop, per-pixel steps in one pass) gives the very bytes of
    # the generic float path; a `scale=1` before the crop forces the generic one
    cases = [("shorter=256:bilinear", "crop=224x224", "norm=123.675,116.28,103.53/58.395,57.12,57.375"),
             ("resize=192x48:bilinear", "swaprb", "norm=127.5/127.5", "--nhwc"),
             ("shorter=100:nearest", "crop=90x80", "scale=0.0039215", "swaprb", "norm=0.5,0.4,0.3/0.2,0.25,0.3"),
             ("resize=300x500:bilinear", "crop=299x480", "--gray", "scale=2"),
             ("crop=100x60", "norm=10/3")]
    for steps in cases:
        geo = [x for x in steps if x.startswith(("shorter", "resize"))]
        rest = [x for x in steps if x not in geo]
        fused = tool(f"{w}/coffee.jpg", *steps)
        generic = tool(f"{w}/coffee.jpg", *geo, "scale=1", *rest)
        check(f"fused path == generic path {' '.join(steps)}", fused is not None and generic is not None and
              fused.tobytes() == generic.tobytes())
    return check.report("image checks")


if __name__ == "__main__":
    sys.exit(main())

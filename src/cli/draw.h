/* Drawing on an RGB canvas for qcal visualize: rectangles, blended pixels, scaled images and
 * text in a 5 x 7 pixel font (upper case, digits, common punctuation). */
#ifndef QCAL_CLI_DRAW_H
#define QCAL_CLI_DRAW_H

#include <stdint.h>

struct qcal_image;

struct canvas {
    int w, h;
    uint8_t *rgb; /* w * h * 3, owned by the caller */
};

/* Colour k of a fixed palette of distinct colours (k wraps around). */
const uint8_t *draw_color(int k);
void draw_fill(struct canvas *c, int x0, int y0, int x1, int y1, const uint8_t *col);
/* Mixes col into pixel (x, y) with weight alpha in [0, 1]. */
void draw_blend(struct canvas *c, int x, int y, const uint8_t *col, float alpha);
/* The outline of [x0, x1) x [y0, y1), `thick` pixels inwards. */
void draw_rect(struct canvas *c, int x0, int y0, int x1, int y1, int thick, const uint8_t *col);
/* im (RGB or gray) scaled to w x h (nearest) with its top left corner at (x, y). */
void draw_image(struct canvas *c, int x, int y, const struct qcal_image *im, int w, int h);
/* Text at (x, y) (top left), each font pixel `scale` pixels; lower case drawn as upper case,
 * characters without a glyph as '?'. Returns the width drawn. */
int draw_text(struct canvas *c, int x, int y, const char *s, int scale, const uint8_t *col);
int draw_text_width(const char *s, int scale);
#define DRAW_TEXT_HEIGHT(scale) (7 * (scale))

#endif

/* SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * A relay in C: one encoded stream, several receivers, each at its own quality level, and not
 * one frame encoded twice. The encoder runs once; a tee hands every frame to one `siclayers`
 * per receiver, which drops the layers that receiver does not get by rewriting the frame
 * header (no network runs), and each receiver decodes what reaches it:
 *
 *   appsrc ! sicenc ! tee ! queue ! siclayers (receiver 0) ! sicdec ! appsink
 *                       tee ! queue ! siclayers (receiver 1) ! sicdec ! appsink
 *                       tee ! queue ! siclayers (receiver 2) ! sicdec ! appsink
 *
 * Receiver 0 starts with 1 layer and is raised to 2 while the pipeline plays (a property set
 * from the application thread); receiver 1 gets 4 layers and receiver 2 every layer. A pad
 * probe after each thinner counts the bytes each receiver would be sent.
 *
 * It prints, per frame and receiver, the layers carried, the bytes and the PSNR of the decoded
 * picture, and exits with status 1 unless every receiver got the layers it was given and, in
 * every frame, more layers cost more bytes and give a better picture.
 *
 *   cc -O2 -Wall examples/relay.c -o target/relay $(pkg-config --cflags --libs \
 *       gstreamer-app-1.0 gstreamer-video-1.0) -lm
 *   GST_PLUGIN_PATH=$PWD/target/release ORT_DYLIB_PATH=$PWD/.ort/current/libonnxruntime.so \
 *       target/relay [picture-file]
 *
 * (meson builds it as well: `meson test -C build relay`.) Run from the checkout, where the
 * default picture, tests/data/ladybird-256x192.png, lies.
 */

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define RECEIVERS 3
#define FRAMES 6
#define TIMEOUT (30 * GST_SECOND)
#define PHOTO "tests/data/ladybird-256x192.png"

/* Layers each receiver is given at the start; 0 keeps every layer the encoder sends. */
static const guint START_LAYERS[RECEIVERS] = {1, 4, 0};
/* From this frame on, receiver 0 gets SWITCH_LAYERS. */
#define SWITCH_FRAME 3
#define SWITCH_LAYERS 2

/* What the probe after a thinner saw of the last frame through it. */
typedef struct {
  gint layers; /* the frame carries */
  gint levels; /* the model has */
  gsize bytes;
} Seen;

typedef struct {
  gint layers, levels;
  gsize bytes;
  gdouble psnr;
} Row;

static GstPadProbeReturn count_frame(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  Seen *seen = data;
  GstCaps *caps = gst_pad_get_current_caps(pad);
  seen->bytes = gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info));
  seen->layers = seen->levels = 0;
  if (caps != NULL) {
    const GstStructure *s = gst_caps_get_structure(caps, 0);
    gst_structure_get_int(s, "layers", &seen->layers);
    gst_structure_get_int(s, "levels", &seen->levels);
    gst_caps_unref(caps);
  }
  return GST_PAD_PROBE_OK;
}

/* Fails with the first error message on the bus, if there is one. */
static gboolean bus_ok(GstElement *pipeline) {
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  gst_object_unref(bus);
  if (msg == NULL)
    return TRUE;
  GError *err = NULL;
  gchar *debug = NULL;
  gst_message_parse_error(msg, &err, &debug);
  g_printerr("%s: %s (%s)\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)), err->message,
             debug ? debug : "");
  g_clear_error(&err);
  g_free(debug);
  gst_message_unref(msg);
  return FALSE;
}

/* Decodes a picture file to tightly packed RGB (one-shot pipeline); NULL on failure. */
static guint8 *load_picture(const gchar *path, gint *width, gint *height) {
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch(
      "filesrc name=file ! decodebin ! videoconvert ! video/x-raw,format=RGB ! "
      "appsink name=sink sync=false",
      &err);
  if (pipeline == NULL) {
    g_printerr("%s\n", err->message);
    g_clear_error(&err);
    return NULL;
  }
  GstElement *file = gst_bin_get_by_name(GST_BIN(pipeline), "file");
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  g_object_set(file, "location", path, NULL);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstSample *sample = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), TIMEOUT);
  guint8 *rgb = NULL;
  GstVideoInfo info;
  GstVideoFrame frame;
  if (sample != NULL && gst_video_info_from_caps(&info, gst_sample_get_caps(sample)) &&
      gst_video_frame_map(&frame, &info, gst_sample_get_buffer(sample), GST_MAP_READ)) {
    *width = GST_VIDEO_INFO_WIDTH(&info);
    *height = GST_VIDEO_INFO_HEIGHT(&info);
    gsize row = 3 * (gsize)*width;
    rgb = g_malloc(row * *height);
    for (gint y = 0; y < *height; y++)
      memcpy(rgb + y * row,
             (const guint8 *)GST_VIDEO_FRAME_PLANE_DATA(&frame, 0) +
                 y * GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0),
             row);
    gst_video_frame_unmap(&frame);
  } else {
    bus_ok(pipeline);
    g_printerr("cannot decode %s\n", path);
  }
  if (sample != NULL)
    gst_sample_unref(sample);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(file);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  return rgb;
}

/* PSNR in dB of a decoded RGB sample against the packed source; NAN if it cannot be read. */
static gdouble psnr(GstSample *sample, const guint8 *source, gint width, gint height) {
  GstVideoInfo info;
  GstVideoFrame frame;
  if (!gst_video_info_from_caps(&info, gst_sample_get_caps(sample)) ||
      GST_VIDEO_INFO_FORMAT(&info) != GST_VIDEO_FORMAT_RGB ||
      GST_VIDEO_INFO_WIDTH(&info) != width || GST_VIDEO_INFO_HEIGHT(&info) != height ||
      !gst_video_frame_map(&frame, &info, gst_sample_get_buffer(sample), GST_MAP_READ))
    return NAN;
  gdouble sum = 0;
  for (gint y = 0; y < height; y++) {
    const guint8 *got = (const guint8 *)GST_VIDEO_FRAME_PLANE_DATA(&frame, 0) +
                        y * GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
    const guint8 *want = source + (gsize)y * 3 * width;
    for (gint i = 0; i < 3 * width; i++) {
      gdouble d = (gdouble)got[i] - want[i];
      sum += d * d;
    }
  }
  gst_video_frame_unmap(&frame);
  gdouble mse = sum / (3.0 * width * height);
  return mse == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / mse);
}

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  const gchar *needed[] = {"sicenc", "siclayers", "sicdec"};
  for (guint i = 0; i < G_N_ELEMENTS(needed); i++) {
    GstElementFactory *f = gst_element_factory_find(needed[i]);
    if (f == NULL) {
      g_printerr("no %s element: set GST_PLUGIN_PATH to the directory of libgstsic.so\n",
                 needed[i]);
      return 1;
    }
    gst_object_unref(f);
  }

  gint width = 0, height = 0;
  guint8 *source = load_picture(argc > 1 ? argv[1] : PHOTO, &width, &height);
  if (source == NULL)
    return 1;

  GString *desc = g_string_new(NULL);
  g_string_append_printf(desc,
                         "appsrc name=src format=time caps=video/x-raw,format=RGB,width=%d,"
                         "height=%d,framerate=10/1 ! sicenc ! tee name=t",
                         width, height);
  for (guint r = 0; r < RECEIVERS; r++)
    g_string_append_printf(desc,
                           " t. ! queue ! siclayers name=thin%u ! sicdec ! "
                           "video/x-raw,format=RGB ! appsink name=view%u sync=false",
                           r, r);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch(desc->str, &err);
  g_string_free(desc, TRUE);
  if (pipeline == NULL) {
    g_printerr("%s\n", err->message);
    return 1;
  }

  GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  GstElement *thin[RECEIVERS], *view[RECEIVERS];
  Seen seen[RECEIVERS] = {{0}};
  for (guint r = 0; r < RECEIVERS; r++) {
    gchar name[16];
    g_snprintf(name, sizeof name, "thin%u", r);
    thin[r] = gst_bin_get_by_name(GST_BIN(pipeline), name);
    g_snprintf(name, sizeof name, "view%u", r);
    view[r] = gst_bin_get_by_name(GST_BIN(pipeline), name);
    g_object_set(thin[r], "layers", START_LAYERS[r], NULL);
    GstPad *pad = gst_element_get_static_pad(thin[r], "src");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, count_frame, &seen[r], NULL);
    gst_object_unref(pad);
  }

  int status = 0;
  Row rows[FRAMES][RECEIVERS];
  guint asked[FRAMES][RECEIVERS];
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    bus_ok(pipeline);
    g_printerr("the pipeline did not start\n");
    status = 1;
  }
  for (guint n = 0; n < FRAMES && status == 0; n++) {
    if (n == SWITCH_FRAME) /* a receiver's level changes while the pipeline plays */
      g_object_set(thin[0], "layers", SWITCH_LAYERS, NULL);
    GstBuffer *buf = gst_buffer_new_memdup(source, (gsize)3 * width * height);
    GST_BUFFER_PTS(buf) = n * GST_SECOND / 10;
    GST_BUFFER_DURATION(buf) = GST_SECOND / 10;
    if (gst_app_src_push_buffer(GST_APP_SRC(src), buf) != GST_FLOW_OK) {
      bus_ok(pipeline);
      g_printerr("pushing frame %u failed\n", n);
      status = 1;
      break;
    }
    /* One picture per receiver; the probe ran before the picture was decoded. */
    for (guint r = 0; r < RECEIVERS; r++) {
      GstSample *shown = gst_app_sink_try_pull_sample(GST_APP_SINK(view[r]), TIMEOUT);
      if (shown == NULL || !bus_ok(pipeline)) {
        g_printerr("frame %u: no picture for receiver %u\n", n, r);
        if (shown != NULL)
          gst_sample_unref(shown);
        status = 1;
        break;
      }
      asked[n][r] = (r == 0 && n >= SWITCH_FRAME) ? SWITCH_LAYERS : START_LAYERS[r];
      rows[n][r] = (Row){seen[r].layers, seen[r].levels, seen[r].bytes,
                         psnr(shown, source, width, height)};
      gst_sample_unref(shown);
    }
  }

  if (status == 0) {
    gst_app_src_end_of_stream(GST_APP_SRC(src));
    GstBus *bus = gst_element_get_bus(pipeline);
    GstMessage *msg =
        gst_bus_timed_pop_filtered(bus, TIMEOUT, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    if (msg != NULL)
      gst_message_unref(msg);
    gst_object_unref(bus);

    gdouble to_bpp = 8.0 / ((gdouble)width * height);
    printf("%5s %8s %6s %6s %6s %6s %8s\n", "frame", "receiver", "asked", "layers", "bytes",
           "bpp", "PSNR dB");
    for (guint n = 0; n < FRAMES; n++)
      for (guint r = 0; r < RECEIVERS; r++) {
        Row *x = &rows[n][r];
        gint want = asked[n][r] ? (gint)MIN(asked[n][r], (guint)x->levels) : x->levels;
        printf("%5u %8u %6d %6d %6zu %6.3f %8.2f\n", n, r, want, x->layers, x->bytes,
               x->bytes * to_bpp, x->psnr);
        if (x->layers != want || want < 1) {
          printf("FAIL: frame %u, receiver %u: asked for %d layers, got %d\n", n, r, want,
                 x->layers);
          status = 1;
        }
      }
    /* In every frame, more layers: more bytes and a better picture. */
    for (guint n = 0; n < FRAMES; n++)
      for (guint a = 0; a < RECEIVERS; a++)
        for (guint b = 0; b < RECEIVERS; b++) {
          Row *x = &rows[n][a], *y = &rows[n][b];
          if (x->layers < y->layers && !(x->bytes < y->bytes && x->psnr < y->psnr)) {
            printf("FAIL: frame %u: %d layers (%zu B, %.2f dB) not below %d (%zu B, %.2f dB)\n",
                   n, x->layers, x->bytes, x->psnr, y->layers, y->bytes, y->psnr);
            status = 1;
          }
        }
  }

  gst_element_set_state(pipeline, GST_STATE_NULL);
  for (guint r = 0; r < RECEIVERS; r++) {
    gst_object_unref(thin[r]);
    gst_object_unref(view[r]);
  }
  gst_object_unref(src);
  gst_object_unref(pipeline);
  g_free(source);
  return status;
}

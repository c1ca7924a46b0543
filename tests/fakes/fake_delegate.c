/* Real LiteRT external delegates that misbehave, for the fallback and containment tests.
 *
 * Built by the tests with the system C compiler and loaded through LiteRT's external delegate
 * API (tflite_plugin_create_delegate), so the real runtime meets them, not a patch:
 *   default:     Prepare refuses every model (LiteRT restores the plan; the backend falls back)
 *   -DCRASH:     Prepare dereferences NULL (SIGSEGV), as Edge TPU / GPU delegates do in the
 *                field; only inference in a separate process survives it.
 * The struct mirrors TfLiteDelegate from tensorflow/lite/core/c/common.h (a stable C ABI); only
 * Prepare is used.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef struct TfLiteContext TfLiteContext;
typedef struct TfLiteDelegate TfLiteDelegate;

struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext* context, TfLiteDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
};

static TfLiteStatus prepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  (void)context;
  (void)delegate;
#ifdef CRASH
  volatile int* nowhere = NULL;
  *nowhere = 42;
  return kTfLiteOk;
#else
  return kTfLiteError;
#endif
}

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count,
                                              void (*report_error)(const char*)) {
  (void)keys;
  (void)values;
  (void)count;
  (void)report_error;
  TfLiteDelegate* delegate = (TfLiteDelegate*)calloc(1, sizeof(TfLiteDelegate));
  delegate->Prepare = prepare;
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { free(delegate); }

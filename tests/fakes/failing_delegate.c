/* A real LiteRT external delegate that refuses every model: its Prepare returns an error.
 *
 * Built by the tests with the system C compiler and loaded through LiteRT's external delegate
 * API (tflite_plugin_create_delegate), so the fallback path is exercised by the real runtime,
 * not by patching. The struct below mirrors TfLiteDelegate from tensorflow/lite/core/c/common.h
 * (a stable C ABI); only Prepare is used.
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

static TfLiteStatus refuse(TfLiteContext* context, TfLiteDelegate* delegate) {
  (void)context;
  (void)delegate;
  return kTfLiteError;
}

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count,
                                              void (*report_error)(const char*)) {
  (void)keys;
  (void)values;
  (void)count;
  (void)report_error;
  TfLiteDelegate* delegate = (TfLiteDelegate*)calloc(1, sizeof(TfLiteDelegate));
  delegate->Prepare = refuse;
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { free(delegate); }

"""The models the program knows, as the export scripts need them.

Keep in step with models/registry.go: a Go test (models/registry_test.go)
fails when the names or file names here differ from the registry there.
"""

# name -> file name the program looks for in its model folder
MODELS = {
    "detr-resnet-50": "detr-resnet-50.onnx",
    "transpose-h-a4": "transpose-h-a4-256x192.onnx",
}

DETR = "detr-resnet-50"
TRANSPOSE = "transpose-h-a4"

# ImageNet statistics, RGB order, for inputs scaled to 0..1; the program
# normalises with the same numbers before it feeds either model.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

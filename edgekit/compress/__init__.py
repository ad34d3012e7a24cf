"""Compression: recipes (recipes/*.yaml) of passes (PTQ, QAT, distillation), INT8 routes, and accuracy control.

    from edgekit.compress.recipes import get_recipe, list_recipes
    recipe = get_recipe("ptq-int8")          # or a path to a recipe YAML file

Modules: `passes` (typed pass parameters, and what each pass does in a build),
`recipes` (loading and validation), `data` (the --calib split), `quantize`
(accuracy-controlled quantization), `routes` (onnxruntime QDQ, Paddle's
PostTrainingQuantization, QAT's program, NNCF), `qat` (quantization-aware training), `distill`
(knowledge distillation). Which route a target uses is its adapter's choice
(edgekit.targets); `edgekit.build` runs the passes.
"""

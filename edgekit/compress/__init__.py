"""Compression: recipes (recipes/*.yaml) of passes (PTQ, QAT, distillation), INT8 routes per runtime,
and accuracy control.

    from edgekit.compress.recipes import get_recipe, list_recipes
    recipe = get_recipe("ptq-int8")          # or a path to a recipe YAML file

Modules: `passes` (typed pass parameters), `recipes` (loading and validation),
`data` (the --calib split), `quantize` (accuracy-controlled quantization),
`routes` (onnxruntime QDQ, PaddleSlim), `build_steps` (what `edgekit build` calls),
`distill` (knowledge distillation).
"""

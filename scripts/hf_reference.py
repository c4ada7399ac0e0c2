#!/usr/bin/env python3
"""Write <folder>/reference.json: what Hugging Face transformers computes for a checkpoint folder.

`notellm2 hf check <folder>` imports the same folder and compares its own outputs with these,
so a port can be checked against transformers itself. Run it where torch and transformers are
installed (they are not dependencies of notellm2; nothing in the project runs this script):

    python scripts/hf_reference.py path/to/checkpoint            # writes path/to/checkpoint/reference.json
    python scripts/hf_reference.py path/to/checkpoint --out ref.json --model-class LlamaModel

Language models (LlamaForCausalLM, LlamaModel, Qwen2ForCausalLM, Qwen2Model): two rows of 8
fixed token ids inside the vocabulary, the second right-padded after 5 tokens. Vision encoders
(CLIPVisionModel, CLIPVisionModelWithProjection, SiglipVisionModel): two deterministic
images of the config's size (pixel_values [2, C, S, S], NCHW, values in [-1, 1]).
`--inputs-from other/reference.json` reuses another file's inputs instead.

The model is loaded with `Cls.from_pretrained(folder, dtype=float32, attn_implementation="eager")`
and run on the CPU in float32 with one thread (stored BF16/F16 weights are upcast first).
Every tensor is written as {shape, dtype: "float32", max_abs, head, b64}: b64 is base64 of the
little-endian float32 bytes in row-major order, head the first six values.
"""
import argparse
import base64
import json
import os
import platform
import struct
import sys

LM_CLASSES = ("LlamaForCausalLM", "LlamaModel", "Qwen2ForCausalLM", "Qwen2Model")
VISION_CLASSES = ("CLIPVisionModel", "CLIPVisionModelWithProjection", "SiglipVisionModel")

TENSOR_ENCODING = (
    "b64 = base64 of little-endian float32 bytes, row-major (C order) over shape; "
    "head = first 6 values as JSON numbers; max_abs = max |value|"
)

LM_SEMANTICS = {
    "hidden_states": "L+1 tensors [batch, seq, hidden]: [0] = token embeddings (input of layer 0); [i] for 1<=i<L = output of decoder layer i-1 (residual stream); [L] = final RMSNorm applied to the output of the last layer (HF replaces the raw last-layer output by the normed one).",
    "last_layer_output_before_norm": "output of the last decoder layer before model.norm (captured with a forward hook).",
    "last_hidden_state": "model.norm(last layer output) == hidden_states[L].",
    "logits": "[batch, seq, vocab] for every position (pad positions included; their values are defined, but only positions with attention_mask 1 are meaningful).",
    "logits_last_token": "[batch, vocab] at index attention_mask.sum(-1)-1 (last real token of each row).",
    "logits_last_position": "[batch, vocab] at index seq-1 (a pad position for the right-padded row).",
    "masking": "causal + key-padding mask: finfo(float32).min added to masked scores, softmax in float32. Query rows at pad positions still attend to the real tokens before them.",
}

CLIP_SEMANTICS = {
    "embeddings_output": "patch conv (no bias), flattened row-major over the patch grid, CLS prepended, + position embeddings; BEFORE pre_layrnorm.",
    "hidden_states": "L+1 tensors [batch, 1+patches, hidden]: [0] = pre_layrnorm(embeddings); [i] = output of encoder layer i-1. No final norm on the last one.",
    "last_hidden_state": "encoder output == hidden_states[L] (CLIP applies NO layer norm here).",
    "cls_last_hidden_state": "last_hidden_state[:, 0].",
    "pooler_output": "post_layernorm(last_hidden_state[:, 0]).",
}

SIGLIP_SEMANTICS = {
    "embeddings_output": "patch conv (WITH bias), flattened row-major over the patch grid, + position embeddings (no CLS).",
    "hidden_states": "L+1 tensors [batch, patches, hidden]: [0] = embeddings; [i] = output of encoder layer i-1 (before post_layernorm).",
    "last_hidden_state": "post_layernorm(hidden_states[L]) (SigLIP DOES apply the final norm here).",
    "pooler_output": "head(last_hidden_state): a learned probe [1,1,D] attends over last_hidden_state with nn.MultiheadAttention (in_proj_weight [3D,D] / in_proj_bias [3D] pack q,k,v in that order; out_proj), then x = x + mlp(layernorm(x)); result is token 0 -> [batch, hidden].",
}

SAFETENSORS_DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def fail(msg):
    sys.exit(f"hf_reference.py: {msg}")


def short_float(v):
    """The shortest decimal that reads back as the same float32 (what numpy prints)."""
    import numpy as np

    return float(str(np.float32(v)))


def encode(t):
    """A tensor as {shape, dtype, max_abs, head, b64} (float32, little-endian, row-major)."""
    import numpy as np

    a = np.ascontiguousarray(t.detach().to("cpu").float().numpy(), dtype="<f4")
    flat = a.reshape(-1)
    return {
        "shape": list(a.shape),
        "dtype": "float32",
        "max_abs": short_float(np.abs(flat).max()) if flat.size else 0.0,
        "head": [short_float(v) for v in flat[:6]],
        "b64": base64.b64encode(a.tobytes()).decode("ascii"),
    }


def decode(entry, where):
    import numpy as np
    import torch

    if not isinstance(entry, dict) or "b64" not in entry or "shape" not in entry:
        fail(f"{where}: expected {{shape, dtype, b64}}")
    a = np.frombuffer(base64.b64decode(entry["b64"]), dtype="<f4").reshape(entry["shape"])
    return torch.from_numpy(a.copy())


def read_config(folder):
    path = os.path.join(folder, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        fail(f"{path}: cannot read ({e})")
    except json.JSONDecodeError as e:
        fail(f"{path}: not valid JSON ({e})")


def stored_dtype(folder):
    """The dtypes of the stored float tensors, from the safetensors headers (no data read)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        files = ["model.safetensors"]
    elif os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        fail(f"{folder}: neither model.safetensors nor model.safetensors.index.json is there (save with safe_serialization=True)")
    seen = set()
    for name in files:
        with open(os.path.join(folder, name), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        seen.update(v["dtype"] for k, v in header.items() if k != "__metadata__")
    names = sorted(SAFETENSORS_DTYPE_NAMES.get(d, d) for d in seen)
    return names[0] if len(names) == 1 else "+".join(names)


def versions():
    import numpy
    import safetensors
    import torch
    import transformers

    out = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
    try:
        import huggingface_hub

        out["huggingface_hub"] = huggingface_hub.__version__
    except ImportError:
        pass
    return out


def load_model(cls_name, folder):
    import torch
    import transformers

    cls = getattr(transformers, cls_name, None)
    if cls is None:
        fail(f"transformers {transformers.__version__} has no class {cls_name}")
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    # transformers 4.56 renamed torch_dtype to dtype.
    kw = {"dtype": torch.float32} if (major, minor) >= (4, 56) else {"torch_dtype": torch.float32}
    model = cls.from_pretrained(folder, attn_implementation="eager", **kw).eval()
    return model, f"Cls.from_pretrained(folder, {'dtype' if 'dtype' in kw else 'torch_dtype'}=torch.float32, attn_implementation='eager').eval(); torch.no_grad()"


def lm_inputs(config, inputs_from):
    import torch

    if inputs_from is not None:
        ids, mask = inputs_from.get("input_ids"), inputs_from.get("attention_mask")
        if ids is None:
            fail("--inputs-from: the file has no inputs.input_ids")
        if mask is None:
            mask = [[1] * len(r) for r in ids]
    else:
        vocab = config.get("vocab_size")
        if not isinstance(vocab, int) or vocab < 2:
            fail(f"config.json vocab_size must be an integer >= 2, got {vocab!r}")
        pad = config.get("pad_token_id")
        pad = pad if isinstance(pad, int) and 0 <= pad < vocab else 0
        # Fixed ids inside the vocabulary; the last one of row 0 is the vocabulary's last id.
        ids = [
            [x % vocab for x in (1, 17, 250, 3, 99, 42, 7)] + [vocab - 1],
            [x % vocab for x in (1, 5, 77, 203, 11)] + [pad] * 3,
        ]
        mask = [[1] * 8, [1] * 5 + [0] * 3]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


def run_lm(model, cls_name, ids, mask):
    import torch

    body = model.model if hasattr(model, "model") and hasattr(model.model, "layers") else model
    n_layers = len(body.layers)
    captured = {}

    def hook(_module, _inputs, output):
        # transformers 4.x decoder layers return a tuple, 5.x the hidden states alone.
        captured["raw"] = (output[0] if isinstance(output, tuple) else output).detach().clone()

    handle = body.layers[-1].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
    finally:
        handle.remove()
    hs = list(out.hidden_states)
    if len(hs) != n_layers + 1:
        fail(f"{cls_name} returned {len(hs)} hidden states for {n_layers} layers (L + 1 expected)")
    raw = captured["raw"]
    last = body.norm(raw)
    # The documented semantics: hidden_states[L] is the final-normed state. Hold the installed
    # transformers to it rather than assume it.
    if not torch.equal(hs[-1], last):
        if not torch.equal(hs[-1], raw):
            fail("hidden_states[L] is neither the final-normed state nor the raw last layer output")
        hs[-1] = last
    outputs = {
        "hidden_states": [encode(h) for h in hs],
        "last_layer_output_before_norm": encode(raw),
        "last_hidden_state": encode(hs[-1]),
    }
    semantics = {k: LM_SEMANTICS[k] for k in ("hidden_states", "last_layer_output_before_norm", "last_hidden_state", "masking")}
    if cls_name.endswith("ForCausalLM"):
        logits = out.logits
        rows = torch.arange(ids.shape[0])
        outputs["logits"] = encode(logits)
        outputs["logits_last_token"] = encode(logits[rows, mask.sum(-1) - 1])
        outputs["logits_last_position"] = encode(logits[:, -1])
        for k in ("logits", "logits_last_token", "logits_last_position"):
            semantics[k] = LM_SEMANTICS[k]
    return outputs, semantics


def vision_config(config):
    return config.get("vision_config", config) if isinstance(config.get("vision_config"), dict) else config


def vision_inputs(config, inputs_from):
    import torch

    if inputs_from is not None:
        pv = inputs_from.get("pixel_values")
        if pv is None:
            fail("--inputs-from: the file has no inputs.pixel_values")
        return decode(pv, "--inputs-from inputs.pixel_values")
    vc = vision_config(config)
    size = vc.get("image_size")
    if not isinstance(size, int) or size <= 0:
        fail(f"config.json image_size must be a positive integer, got {size!r}")
    channels = vc.get("num_channels", 3)
    n, c, h, w = torch.meshgrid(torch.arange(2.0), torch.arange(float(channels)), torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    # Smooth, different per image, channel and row; values in [-1, 1] like normalised pixels.
    return torch.sin(0.23 * (c + 1) * w + 0.37 * (h + 1) * (n + 1) + 0.5 * n).float().contiguous()


def run_vision(model, cls_name, pixel_values):
    import torch

    # transformers 4.x wraps the tower as model.vision_model; 5.x vision models are the tower
    # itself (CLIPVisionModelWithProjection keeps the wrapper in both).
    vm = getattr(model, "vision_model", model)
    captured = {}
    handle = vm.embeddings.register_forward_hook(lambda _m, _i, o: captured.__setitem__("emb", o.detach().clone()))
    try:
        with torch.no_grad():
            out = model(pixel_values=pixel_values, output_hidden_states=True)
            # CLIPVisionModelWithProjection returns image_embeds instead of the pooled output.
            pooled = vm(pixel_values=pixel_values).pooler_output if cls_name == "CLIPVisionModelWithProjection" else getattr(out, "pooler_output", None)
    finally:
        handle.remove()
    if out.hidden_states is None:
        fail(f"{cls_name} returned no hidden states")
    outputs = {
        "embeddings_output": encode(captured["emb"]),
        "hidden_states": [encode(h) for h in out.hidden_states],
        "last_hidden_state": encode(out.last_hidden_state),
    }
    if cls_name.startswith("CLIP"):
        semantics = dict(CLIP_SEMANTICS)
        outputs["cls_last_hidden_state"] = encode(out.last_hidden_state[:, 0])
        outputs["pooler_output"] = encode(pooled)
        if cls_name == "CLIPVisionModelWithProjection":
            outputs["image_embeds"] = encode(out.image_embeds)
            semantics["image_embeds"] = "visual_projection(pooler_output)."
    else:
        semantics = dict(SIGLIP_SEMANTICS)
        if pooled is not None:
            outputs["pooler_output"] = encode(pooled)
        else:  # vision_use_head false: no attention-pooling head
            del semantics["pooler_output"]
    return outputs, semantics


def describe(cls_name, config):
    if cls_name in LM_CLASSES:
        heads = config.get("num_attention_heads")
        kv = config.get("num_key_value_heads") or heads
        head_dim = config.get("head_dim") or (config["hidden_size"] // heads)
        return (
            f"{cls_name}: hidden {config.get('hidden_size')}, {config.get('num_hidden_layers')} layers, "
            f"{heads} query / {kv} key-value heads, head_dim {head_dim}, intermediate {config.get('intermediate_size')}, "
            f"vocab {config.get('vocab_size')}, tie_word_embeddings {config.get('tie_word_embeddings')}."
        )
    vc = vision_config(config)
    return (
        f"{cls_name}: image {vc.get('image_size')}, patch {vc.get('patch_size')}, hidden {vc.get('hidden_size')}, "
        f"{vc.get('num_hidden_layers')} layers, {vc.get('hidden_act')}, layer_norm_eps {vc.get('layer_norm_eps')}."
    )


def writer_note(config):
    v = config.get("transformers_version")
    layout = "rope_parameters" if "rope_parameters" in config else "top-level rope_theta" if "rope_theta" in config else "no rotary fields"
    return f"config.json written by transformers {v} ({layout})" if v else f"config.json names no transformers_version ({layout})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="checkpoint folder as save_pretrained writes it (config.json + safetensors)")
    ap.add_argument("--out", help="output file (default <folder>/reference.json)")
    ap.add_argument("--model-class", help=f"transformers class to load (default: config.json architectures[0]); one of {', '.join(LM_CLASSES + VISION_CLASSES)}")
    ap.add_argument("--inputs-from", help="reuse the inputs of this reference.json instead of the built-in ones")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    folder = args.folder
    config = read_config(folder)
    cls_name = args.model_class
    if cls_name is None:
        archs = config.get("architectures")
        if not isinstance(archs, list) or len(archs) != 1:
            fail(f"config.json architectures is {archs!r}; name the class with --model-class")
        cls_name = archs[0]
    if cls_name not in LM_CLASSES + VISION_CLASSES:
        fail(f"class {cls_name} is not supported; supported: {', '.join(LM_CLASSES + VISION_CLASSES)}")
    inputs_from = None
    if args.inputs_from:
        with open(args.inputs_from, encoding="utf-8") as f:
            inputs_from = json.load(f).get("inputs")
        if not isinstance(inputs_from, dict):
            fail(f"{args.inputs_from}: no inputs object")

    model, load = load_model(cls_name, folder)
    if cls_name in LM_CLASSES:
        ids, mask = lm_inputs(config, inputs_from)
        vocab = model.config.vocab_size
        if int(ids.min()) < 0 or int(ids.max()) >= vocab:
            fail(f"input ids must lie in 0 … {vocab - 1}")
        outputs, semantics = run_lm(model, cls_name, ids, mask)
        inputs = {
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "position_ids": "not passed: HF uses arange(seq_len) for every row (positions are not derived from the mask)",
            "last_token_index": (mask.sum(-1) - 1).tolist(),
        }
    else:
        pixel_values = vision_inputs(config, inputs_from)
        outputs, semantics = run_vision(model, cls_name, pixel_values)
        inputs = {"pixel_values": encode(pixel_values)}

    ref = {
        "fixture": os.path.basename(os.path.normpath(folder)),
        "description": describe(cls_name, config),
        "writer": writer_note(config),
        "model_class": cls_name,
        "load": load,
        "compute_dtype": "float32",
        "stored_weight_dtype": stored_dtype(folder),
        "generated_with": versions(),
        "tensor_encoding": TENSOR_ENCODING,
        "semantics": semantics,
        "inputs": inputs,
        "outputs": outputs,
    }
    out = args.out or os.path.join(folder, "reference.json")
    tmp = f"{out}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    os.replace(tmp, out)
    print(f"wrote {out}: {cls_name}, outputs {', '.join(outputs)}")


if __name__ == "__main__":
    main()

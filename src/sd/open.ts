/**
 * Open Stable Diffusion from what the user has (issue 19): an ONNX export (`../sd/export.ts`) or a
 * diffusers pipeline folder with safetensors weights (`diffusers/folder.ts`, built into memscope's
 * own graphs and opened through the export loader). Either way the caller gets an {@link SdExport};
 * for a folder its `dir` is the folder and `dispose` also removes the temporary graphs. A single-file
 * checkpoint (`FILE.safetensors`, `diffusers/single-file.ts`) opens with the configs, scheduler and
 * tokenizer of a pipeline folder (`pipelineConfig`); its `dir` is the file.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { type LoadSdExportOptions, type SdExport, loadSdExport } from './export.ts';
import { type DiffusersConfigs, type DiffusersVariant, FUSED_UNET_FILE, type LoraSpec, isDiffusersFolder, materializeDiffusersFolder } from './diffusers/folder.ts';

/** Options of {@link openStableDiffusion}: the export loader's, plus the weight variant of a folder. */
export interface OpenSdOptions extends Omit<LoadSdExportOptions, 'externalData'> {
  /** Weight files of a diffusers folder: `'fp32'` or `'fp16'` (the `.fp16.safetensors` variant); default: fp32 when present, else fp16. */
  readonly variant?: DiffusersVariant;
  /** LoRA adapters merged into a diffusers folder's U-Net / text encoder at load (`--lora FILE[:scale]`); refused for an ONNX export. */
  readonly lora?: readonly LoraSpec[];
  /** Sample a diffusers folder with onnxruntime's fused attention kernel (default true; same values, faster on the CPU). Ren et al.'s surgery and Wen et al.'s gradient always use the decomposed graph. */
  readonly fusedAttention?: boolean;
  /** How the temp layout links the weight files (tests simulate a temp folder on another file system); default `fs.linkSync`. */
  readonly link?: (src: string, dst: string) => void;
  /** For a single-file checkpoint: the diffusers pipeline folder whose configs, scheduler and tokenizer it is read with (`--pipeline-config`; its weight files are not read). */
  readonly pipelineConfig?: string;
}

/** True when `spec` is a file ending in `.safetensors` (a single-file checkpoint). */
export function isSingleFileCheckpoint(spec: string): boolean {
  return spec.endsWith('.safetensors') && existsSync(spec) && statSync(spec).isFile();
}

/** An opened Stable Diffusion model; `diffusers` describes a pipeline folder's resolved configs (null for an ONNX export). */
export type OpenedSd = SdExport & { readonly diffusers: DiffusersConfigs | null };

/** Open the Stable Diffusion model at `dir` (an ONNX export or a diffusers pipeline folder; see the module note). */
export async function openStableDiffusion(dir: string, opts: OpenSdOptions = {}): Promise<OpenedSd> {
  const { variant, lora, fusedAttention, link, pipelineConfig, ...rest } = opts;
  const single = isSingleFileCheckpoint(dir);
  if (single) {
    if (pipelineConfig === undefined) throw new Error(`--pipeline-config: required with the single-file checkpoint ${dir} — a diffusers pipeline folder with model_index.json, scheduler/, tokenizer/ and the unet/, text_encoder/, vae/ config.json files of the same model family (e.g. stable-diffusion-v1-5's for SD 1.x fine-tunes; stable-diffusion-2-1 for 768-v files, -2-1-base for 512 ε files); its weights are not read`);
    if (!isDiffusersFolder(pipelineConfig)) throw new Error(`--pipeline-config: ${pipelineConfig} is not a diffusers pipeline folder (expected model_index.json and unet/config.json, and no unet/model.onnx)`);
  } else if (pipelineConfig !== undefined) throw new Error(`--pipeline-config: only with a single-file checkpoint (--model FILE.safetensors); ${dir} is a folder`);
  if (!single && !isDiffusersFolder(dir)) {
    if (variant !== undefined) throw new Error(`--variant: ${dir} is an ONNX export, not a diffusers folder with safetensors weights; omit --variant`);
    if (lora !== undefined && lora.length > 0) throw new Error(`--lora: ${dir} is an ONNX export; memscope merges LoRA adapters into diffusers pipeline folders (fuse the adapter before exporting, or point --model at the folder)`);
    return { ...(await loadSdExport(dir, rest)), diffusers: null };
  }
  const m = materializeDiffusersFolder(single ? pipelineConfig! : dir, variant, lora ?? [], link, single ? dir : undefined);
  let exp: SdExport;
  try {
    exp = await loadSdExport(m.root, { ...rest, externalData: m.inMemory, ...(fusedAttention === false ? {} : { unetSessionFile: FUSED_UNET_FILE }) });
  } catch (e) {
    m.dispose();
    throw e;
  }
  return {
    ...exp,
    unet: Object.keys(m.unetSources).length === 0 ? exp.unet : { ...exp.unet, weightSources: m.unetSources },
    dir: resolve(dir),
    diffusers: m.configs,
    async dispose(): Promise<void> {
      try {
        await exp.dispose();
      } finally {
        m.dispose();
      }
    },
  };
}

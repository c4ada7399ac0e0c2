/**
 * The one place the library imports TensorFlow.js from. Every other module does
 * `import { tf } from '../backend'` so that an optional native build (tfjs-node) and the
 * kernels registered in this folder always act on the same tfjs instance.
 */
import * as tf from '@tensorflow/tfjs';

export { tf };
export type Tensor = tf.Tensor;
export type Tensor1D = tf.Tensor1D;
export type Tensor2D = tf.Tensor2D;
export type Tensor3D = tf.Tensor3D;
export type Tensor4D = tf.Tensor4D;
export type Variable = tf.Variable;

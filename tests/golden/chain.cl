static inline float fu_exp_float(const float x)
{
    const float xc = x < (float)(-104.0f) ? (float)(-104.0f) : (x > (float)(89.0f) ? (float)(89.0f) : x);
    const float kf = (xc * (float)(1.44269504088896341f) + (float)(12582912.0f)) - (float)(12582912.0f);
    const float r = (xc - kf * (float)(0.693359375f)) - kf * (float)(-2.12194440e-4f);
    const float r2 = r * r;
    const float p = (((((float)(1.9875691500e-4f) * r + (float)(1.3981999507e-3f)) * r
        + (float)(8.3334519073e-3f)) * r + (float)(4.1665795894e-2f)) * r
        + (float)(1.6666665459e-1f)) * r + (float)(5.0000001201e-1f);
    const float e = p * r2 + r + (float)(1.0f);
    const int k = as_int(kf + (float)(12582912.0f)) - (int)(0x4B400000);
    const int k1 = k >> 1;
    const float s1 = as_float((k1 + (int)(127)) << 23);
    const float s2 = as_float((k - k1 + (int)(127)) << 23);
    const float y = e * s1 * s2;
    return x != x ? x : (x > (float)(88.7228394f) ? (float)(INFINITY) : (x < (float)(-103.972084f) ? (float)(0.0f) : y));
}

static inline float16 fu_exp_float16(const float16 x)
{
    const float16 xc = x < (float16)(-104.0f) ? (float16)(-104.0f) : (x > (float16)(89.0f) ? (float16)(89.0f) : x);
    const float16 kf = (xc * (float16)(1.44269504088896341f) + (float16)(12582912.0f)) - (float16)(12582912.0f);
    const float16 r = (xc - kf * (float16)(0.693359375f)) - kf * (float16)(-2.12194440e-4f);
    const float16 r2 = r * r;
    const float16 p = (((((float16)(1.9875691500e-4f) * r + (float16)(1.3981999507e-3f)) * r
        + (float16)(8.3334519073e-3f)) * r + (float16)(4.1665795894e-2f)) * r
        + (float16)(1.6666665459e-1f)) * r + (float16)(5.0000001201e-1f);
    const float16 e = p * r2 + r + (float16)(1.0f);
    const int16 k = as_int16(kf + (float16)(12582912.0f)) - (int16)(0x4B400000);
    const int16 k1 = k >> 1;
    const float16 s1 = as_float16((k1 + (int16)(127)) << 23);
    const float16 s2 = as_float16((k - k1 + (int16)(127)) << 23);
    const float16 y = e * s1 * s2;
    return x != x ? x : (x > (float16)(88.7228394f) ? (float16)(INFINITY) : (x < (float16)(-103.972084f) ? (float16)(0.0f) : y));
}

// fusec: graph chain, kernel chain_k0
// fused ops (5): mul add relu sub sigmoid
// elements per work-item: 32 (2 vectors of 16)
__kernel void chain_k0(
    const long n,
    const long d0,
    __global const float *restrict in_x,
    __global float *restrict out0)
{
    const long i0 = (long)get_global_id(0) * 32;
    if (i0 + 32 <= n) {
        { const long i = i0 + 0;
            const float16 p0 = vload16(0, in_x + i);
            const float16 v2 = (p0 * ((float16)(2.0f)));  // mul
            const float16 v4 = (v2 + ((float16)(1.0f)));  // add
            const float16 v5 = (v4 < ((float16)(0.0f)) ? ((float16)(0.0f)) : v4);  // relu
            const float16 v7 = (v5 - ((float16)(0.5f)));  // sub
            const float16 v8 = (((float16)(1.0f)) / (((float16)(1.0f)) + fu_exp_float16(-(v7))));  // sigmoid
            vstore16(v8, 0, out0 + i);
        }
        { const long i = i0 + 16;
            const float16 p0 = vload16(0, in_x + i);
            const float16 v2 = (p0 * ((float16)(2.0f)));  // mul
            const float16 v4 = (v2 + ((float16)(1.0f)));  // add
            const float16 v5 = (v4 < ((float16)(0.0f)) ? ((float16)(0.0f)) : v4);  // relu
            const float16 v7 = (v5 - ((float16)(0.5f)));  // sub
            const float16 v8 = (((float16)(1.0f)) / (((float16)(1.0f)) + fu_exp_float16(-(v7))));  // sigmoid
            vstore16(v8, 0, out0 + i);
        }
    } else {
        for (long j = i0; j < n; ++j) {
            const float p0 = in_x[j];
            const float v2 = (p0 * 2.0f);  // mul
            const float v4 = (v2 + 1.0f);  // add
            const float v5 = (v4 < 0.0f ? 0.0f : v4);  // relu
            const float v7 = (v5 - 0.5f);  // sub
            const float v8 = (1.0f / (1.0f + fu_exp_float(-(v7))));  // sigmoid
            out0[j] = v8;
        }
    }
}


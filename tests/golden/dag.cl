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

static inline float fu_tanh_float(const float x)
{
    const int bits = as_int(x);
    const float ax = as_float(bits & (int)(0x7fffffff));
    const float z = x * x;
    // x * (1 + z*P) rather than x + x*z*P: keeps tanh(-0.0) = -0.0
    const float small = x * ((float)(1.0f) + (((((float)(-5.70498872745e-3f) * z + (float)(2.06390887954e-2f)) * z
        + (float)(-5.37397155531e-2f)) * z + (float)(1.33314422036e-1f)) * z
        + (float)(-3.33332819422e-1f)) * z);
    const float big = (float)(1.0f) - (float)(2.0f) / (fu_exp_float(ax + ax) + (float)(1.0f));
    const float signed_big = as_float(as_int(big) | (bits & (int)(0x80000000)));
    return ax < (float)(0.625f) ? small : signed_big;
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

static inline float16 fu_tanh_float16(const float16 x)
{
    const int16 bits = as_int16(x);
    const float16 ax = as_float16(bits & (int16)(0x7fffffff));
    const float16 z = x * x;
    // x * (1 + z*P) rather than x + x*z*P: keeps tanh(-0.0) = -0.0
    const float16 small = x * ((float16)(1.0f) + (((((float16)(-5.70498872745e-3f) * z + (float16)(2.06390887954e-2f)) * z
        + (float16)(-5.37397155531e-2f)) * z + (float16)(1.33314422036e-1f)) * z
        + (float16)(-3.33332819422e-1f)) * z);
    const float16 big = (float16)(1.0f) - (float16)(2.0f) / (fu_exp_float16(ax + ax) + (float16)(1.0f));
    const float16 signed_big = as_float16(as_int16(big) | (bits & (int16)(0x80000000)));
    return ax < (float16)(0.625f) ? small : signed_big;
}

// fusec: graph dag, kernel dag_k0
// fused ops (5): mul add tanh mul sub
// elements per work-item: 64 (4 vectors of 16)
__attribute__((vec_type_hint(float16)))
__kernel void dag_k0(
    const long n,
    const long d0,
    const long d1,
    __global const float *restrict in_x,
    __global const float *restrict in_b,
    __global const float *restrict in_c,
    const float in_s,
    __global float *restrict out0,
    __global float *restrict out1,
    const long inner,
    const long rows)
{
    const long t = get_global_id(0);
    const long items = (inner + 63) / 64;
    const long row = ((t | items) >> 32) ? t / items : (long)((uint)t / (uint)items);
    const long c0 = (t - row * items) * 64;
    if (row >= rows) return;
    {
        const long rb = row * inner;
        const long ob1 = 0;
        const long ob2 = (row);
        if (c0 + 64 <= inner) {
            { const long c = c0 + 0; const long i = rb + c;
                const float16 p0 = vload16(0, in_x + i);
                const float16 p1 = vload16(0, in_b + ob1 + c);
                const float16 p2 = ((float16)(in_c[ob2]));
                const float16 p3 = ((float16)(in_s));
                const float16 v4 = (p0 * p3);  // mul
                const float16 v5 = (v4 + p1);  // add
                const float16 v6 = fu_tanh_float16(v5);  // tanh
                const float16 v7 = (v6 * p2);  // mul
                const float16 v8 = (v5 - p2);  // sub
                vstore16(v7, 0, out0 + i);
                vstore16(v8, 0, out1 + i);
            }
            { const long c = c0 + 16; const long i = rb + c;
                const float16 p0 = vload16(0, in_x + i);
                const float16 p1 = vload16(0, in_b + ob1 + c);
                const float16 p2 = ((float16)(in_c[ob2]));
                const float16 p3 = ((float16)(in_s));
                const float16 v4 = (p0 * p3);  // mul
                const float16 v5 = (v4 + p1);  // add
                const float16 v6 = fu_tanh_float16(v5);  // tanh
                const float16 v7 = (v6 * p2);  // mul
                const float16 v8 = (v5 - p2);  // sub
                vstore16(v7, 0, out0 + i);
                vstore16(v8, 0, out1 + i);
            }
            { const long c = c0 + 32; const long i = rb + c;
                const float16 p0 = vload16(0, in_x + i);
                const float16 p1 = vload16(0, in_b + ob1 + c);
                const float16 p2 = ((float16)(in_c[ob2]));
                const float16 p3 = ((float16)(in_s));
                const float16 v4 = (p0 * p3);  // mul
                const float16 v5 = (v4 + p1);  // add
                const float16 v6 = fu_tanh_float16(v5);  // tanh
                const float16 v7 = (v6 * p2);  // mul
                const float16 v8 = (v5 - p2);  // sub
                vstore16(v7, 0, out0 + i);
                vstore16(v8, 0, out1 + i);
            }
            { const long c = c0 + 48; const long i = rb + c;
                const float16 p0 = vload16(0, in_x + i);
                const float16 p1 = vload16(0, in_b + ob1 + c);
                const float16 p2 = ((float16)(in_c[ob2]));
                const float16 p3 = ((float16)(in_s));
                const float16 v4 = (p0 * p3);  // mul
                const float16 v5 = (v4 + p1);  // add
                const float16 v6 = fu_tanh_float16(v5);  // tanh
                const float16 v7 = (v6 * p2);  // mul
                const float16 v8 = (v5 - p2);  // sub
                vstore16(v7, 0, out0 + i);
                vstore16(v8, 0, out1 + i);
            }
        } else {
            for (long c = c0; c < inner; ++c) {
                const long j = rb + c;
                const float p0 = in_x[j];
                const float p1 = in_b[ob1 + c];
                const float p2 = in_c[ob2];
                const float p3 = in_s;
                const float v4 = (p0 * p3);  // mul
                const float v5 = (v4 + p1);  // add
                const float v6 = fu_tanh_float(v5);  // tanh
                const float v7 = (v6 * p2);  // mul
                const float v8 = (v5 - p2);  // sub
                out0[j] = v7;
                out1[j] = v8;
            }
        }
    }
}

// fusec: graph dag, kernel dag_k1
// fused ops (1): mul
// elements per work-item: 32 (2 vectors of 16)
__kernel void dag_k1(
    const long n,
    const long d0,
    __global const float *restrict in_b,
    const float in_s,
    __global float *restrict out2)
{
    const long i0 = (long)get_global_id(0) * 32;
    if (i0 + 32 <= n) {
        { const long i = i0 + 0;
            const float16 p1 = vload16(0, in_b + i);
            const float16 p3 = ((float16)(in_s));
            const float16 v9 = (p1 * p3);  // mul
            vstore16(v9, 0, out2 + i);
        }
        { const long i = i0 + 16;
            const float16 p1 = vload16(0, in_b + i);
            const float16 p3 = ((float16)(in_s));
            const float16 v9 = (p1 * p3);  // mul
            vstore16(v9, 0, out2 + i);
        }
    } else {
        for (long j = i0; j < n; ++j) {
            const float p1 = in_b[j];
            const float p3 = in_s;
            const float v9 = (p1 * p3);  // mul
            out2[j] = v9;
        }
    }
}


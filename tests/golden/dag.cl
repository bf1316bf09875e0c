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

static inline float8 fu_exp_float8(const float8 x)
{
    const float8 xc = x < (float8)(-104.0f) ? (float8)(-104.0f) : (x > (float8)(89.0f) ? (float8)(89.0f) : x);
    const float8 kf = (xc * (float8)(1.44269504088896341f) + (float8)(12582912.0f)) - (float8)(12582912.0f);
    const float8 r = (xc - kf * (float8)(0.693359375f)) - kf * (float8)(-2.12194440e-4f);
    const float8 r2 = r * r;
    const float8 p = (((((float8)(1.9875691500e-4f) * r + (float8)(1.3981999507e-3f)) * r
        + (float8)(8.3334519073e-3f)) * r + (float8)(4.1665795894e-2f)) * r
        + (float8)(1.6666665459e-1f)) * r + (float8)(5.0000001201e-1f);
    const float8 e = p * r2 + r + (float8)(1.0f);
    const int8 k = as_int8(kf + (float8)(12582912.0f)) - (int8)(0x4B400000);
    const int8 k1 = k >> 1;
    const float8 s1 = as_float8((k1 + (int8)(127)) << 23);
    const float8 s2 = as_float8((k - k1 + (int8)(127)) << 23);
    const float8 y = e * s1 * s2;
    return x != x ? x : (x > (float8)(88.7228394f) ? (float8)(INFINITY) : (x < (float8)(-103.972084f) ? (float8)(0.0f) : y));
}

static inline float8 fu_tanh_float8(const float8 x)
{
    const int8 bits = as_int8(x);
    const float8 ax = as_float8(bits & (int8)(0x7fffffff));
    const float8 z = x * x;
    // x * (1 + z*P) rather than x + x*z*P: keeps tanh(-0.0) = -0.0
    const float8 small = x * ((float8)(1.0f) + (((((float8)(-5.70498872745e-3f) * z + (float8)(2.06390887954e-2f)) * z
        + (float8)(-5.37397155531e-2f)) * z + (float8)(1.33314422036e-1f)) * z
        + (float8)(-3.33332819422e-1f)) * z);
    const float8 big = (float8)(1.0f) - (float8)(2.0f) / (fu_exp_float8(ax + ax) + (float8)(1.0f));
    const float8 signed_big = as_float8(as_int8(big) | (bits & (int8)(0x80000000)));
    return ax < (float8)(0.625f) ? small : signed_big;
}

// fusec: graph dag, kernel dag_k0
// fused ops (5): mul add tanh mul sub
// elements per work-item: 32 (4 vectors of 8)
__kernel void dag_k0(
    const long n,
    const long d0,
    const long d1,
    __global const float *restrict in_x,
    __global const float *restrict in_b,
    __global const float *restrict in_c,
    const float in_s,
    __global float *restrict out0,
    __global float *restrict out1)
{
    const long i0 = (long)get_global_id(0) * 32;
    if (i0 + 32 <= n) {
        { const long i = i0 + 0;
            const float8 p0 = vload8(0, in_x + i);
            const float8 p1 = ((d1 % 8 == 0) ? vload8(0, in_b + ((i) / 1 % d1)) : ((float8)(in_b[((i + 0) / 1 % d1)], in_b[((i + 1) / 1 % d1)], in_b[((i + 2) / 1 % d1)], in_b[((i + 3) / 1 % d1)], in_b[((i + 4) / 1 % d1)], in_b[((i + 5) / 1 % d1)], in_b[((i + 6) / 1 % d1)], in_b[((i + 7) / 1 % d1)])));
            const float8 p2 = ((d1 % 8 == 0) ? ((float8)(in_c[((i) / (d1))])) : ((float8)(in_c[((i + 0) / (d1))], in_c[((i + 1) / (d1))], in_c[((i + 2) / (d1))], in_c[((i + 3) / (d1))], in_c[((i + 4) / (d1))], in_c[((i + 5) / (d1))], in_c[((i + 6) / (d1))], in_c[((i + 7) / (d1))])));
            const float8 p3 = ((float8)(in_s));
            const float8 v4 = (p0 * p3);  // mul
            const float8 v5 = (v4 + p1);  // add
            const float8 v6 = fu_tanh_float8(v5);  // tanh
            const float8 v7 = (v6 * p2);  // mul
            const float8 v8 = (v5 - p2);  // sub
            vstore8(v7, 0, out0 + i);
            vstore8(v8, 0, out1 + i);
        }
        { const long i = i0 + 8;
            const float8 p0 = vload8(0, in_x + i);
            const float8 p1 = ((d1 % 8 == 0) ? vload8(0, in_b + ((i) / 1 % d1)) : ((float8)(in_b[((i + 0) / 1 % d1)], in_b[((i + 1) / 1 % d1)], in_b[((i + 2) / 1 % d1)], in_b[((i + 3) / 1 % d1)], in_b[((i + 4) / 1 % d1)], in_b[((i + 5) / 1 % d1)], in_b[((i + 6) / 1 % d1)], in_b[((i + 7) / 1 % d1)])));
            const float8 p2 = ((d1 % 8 == 0) ? ((float8)(in_c[((i) / (d1))])) : ((float8)(in_c[((i + 0) / (d1))], in_c[((i + 1) / (d1))], in_c[((i + 2) / (d1))], in_c[((i + 3) / (d1))], in_c[((i + 4) / (d1))], in_c[((i + 5) / (d1))], in_c[((i + 6) / (d1))], in_c[((i + 7) / (d1))])));
            const float8 p3 = ((float8)(in_s));
            const float8 v4 = (p0 * p3);  // mul
            const float8 v5 = (v4 + p1);  // add
            const float8 v6 = fu_tanh_float8(v5);  // tanh
            const float8 v7 = (v6 * p2);  // mul
            const float8 v8 = (v5 - p2);  // sub
            vstore8(v7, 0, out0 + i);
            vstore8(v8, 0, out1 + i);
        }
        { const long i = i0 + 16;
            const float8 p0 = vload8(0, in_x + i);
            const float8 p1 = ((d1 % 8 == 0) ? vload8(0, in_b + ((i) / 1 % d1)) : ((float8)(in_b[((i + 0) / 1 % d1)], in_b[((i + 1) / 1 % d1)], in_b[((i + 2) / 1 % d1)], in_b[((i + 3) / 1 % d1)], in_b[((i + 4) / 1 % d1)], in_b[((i + 5) / 1 % d1)], in_b[((i + 6) / 1 % d1)], in_b[((i + 7) / 1 % d1)])));
            const float8 p2 = ((d1 % 8 == 0) ? ((float8)(in_c[((i) / (d1))])) : ((float8)(in_c[((i + 0) / (d1))], in_c[((i + 1) / (d1))], in_c[((i + 2) / (d1))], in_c[((i + 3) / (d1))], in_c[((i + 4) / (d1))], in_c[((i + 5) / (d1))], in_c[((i + 6) / (d1))], in_c[((i + 7) / (d1))])));
            const float8 p3 = ((float8)(in_s));
            const float8 v4 = (p0 * p3);  // mul
            const float8 v5 = (v4 + p1);  // add
            const float8 v6 = fu_tanh_float8(v5);  // tanh
            const float8 v7 = (v6 * p2);  // mul
            const float8 v8 = (v5 - p2);  // sub
            vstore8(v7, 0, out0 + i);
            vstore8(v8, 0, out1 + i);
        }
        { const long i = i0 + 24;
            const float8 p0 = vload8(0, in_x + i);
            const float8 p1 = ((d1 % 8 == 0) ? vload8(0, in_b + ((i) / 1 % d1)) : ((float8)(in_b[((i + 0) / 1 % d1)], in_b[((i + 1) / 1 % d1)], in_b[((i + 2) / 1 % d1)], in_b[((i + 3) / 1 % d1)], in_b[((i + 4) / 1 % d1)], in_b[((i + 5) / 1 % d1)], in_b[((i + 6) / 1 % d1)], in_b[((i + 7) / 1 % d1)])));
            const float8 p2 = ((d1 % 8 == 0) ? ((float8)(in_c[((i) / (d1))])) : ((float8)(in_c[((i + 0) / (d1))], in_c[((i + 1) / (d1))], in_c[((i + 2) / (d1))], in_c[((i + 3) / (d1))], in_c[((i + 4) / (d1))], in_c[((i + 5) / (d1))], in_c[((i + 6) / (d1))], in_c[((i + 7) / (d1))])));
            const float8 p3 = ((float8)(in_s));
            const float8 v4 = (p0 * p3);  // mul
            const float8 v5 = (v4 + p1);  // add
            const float8 v6 = fu_tanh_float8(v5);  // tanh
            const float8 v7 = (v6 * p2);  // mul
            const float8 v8 = (v5 - p2);  // sub
            vstore8(v7, 0, out0 + i);
            vstore8(v8, 0, out1 + i);
        }
    } else {
        for (long j = i0; j < n; ++j) {
            const float p0 = in_x[j];
            const float p1 = in_b[((j) / 1 % d1)];
            const float p2 = in_c[((j) / (d1))];
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

// fusec: graph dag, kernel dag_k1
// fused ops (1): mul
// elements per work-item: 32 (4 vectors of 8)
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
            const float8 p1 = vload8(0, in_b + i);
            const float8 p3 = ((float8)(in_s));
            const float8 v9 = (p1 * p3);  // mul
            vstore8(v9, 0, out2 + i);
        }
        { const long i = i0 + 8;
            const float8 p1 = vload8(0, in_b + i);
            const float8 p3 = ((float8)(in_s));
            const float8 v9 = (p1 * p3);  // mul
            vstore8(v9, 0, out2 + i);
        }
        { const long i = i0 + 16;
            const float8 p1 = vload8(0, in_b + i);
            const float8 p3 = ((float8)(in_s));
            const float8 v9 = (p1 * p3);  // mul
            vstore8(v9, 0, out2 + i);
        }
        { const long i = i0 + 24;
            const float8 p1 = vload8(0, in_b + i);
            const float8 p3 = ((float8)(in_s));
            const float8 v9 = (p1 * p3);  // mul
            vstore8(v9, 0, out2 + i);
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


// fusec: graph mixed, kernel mixed_k0
// fused ops (8): gt logical_and mul cast where logical_or mul add
// elements per work-item: 32 (2 vectors of 16)
__kernel void mixed_k0(
    const long n,
    const long d0,
    __global const half *restrict in_h,
    __global const uchar *restrict in_m,
    __global const int *restrict in_k,
    __global half *restrict out0,
    __global uchar *restrict out1,
    __global int *restrict out2)
{
    const long i0 = (long)get_global_id(0) * 32;
    if (i0 + 32 <= n) {
        { const long i = i0 + 0;
            const float16 p0 = vload_half16(0, in_h + i);
            const int16 p1 = convert_int16(vload16(0, in_m + i) != (uchar16)(0));
            const int16 p2 = vload16(0, in_k + i);
            const int16 v4 = convert_int16((p2 > ((int16)(3))));  // gt
            const int16 v5 = convert_int16((p1 && v4));  // logical_and
            const float16 v7 = (p0 * ((float16)(2.0f)));  // mul
            const float16 v8 = convert_float16((p2));  // cast
            const float16 v9 = (v5 ? v7 : v8);  // where
            const int16 v10 = convert_int16((p1 || v4));  // logical_or
            const int16 v11 = (p2 * ((int16)(2)));  // mul
            const int16 v13 = (v11 + ((int16)(1)));  // add
            vstore_half16(v9, 0, out0 + i);
            vstore16(convert_uchar16(-(v10)), 0, out1 + i);
            vstore16(v13, 0, out2 + i);
        }
        { const long i = i0 + 16;
            const float16 p0 = vload_half16(0, in_h + i);
            const int16 p1 = convert_int16(vload16(0, in_m + i) != (uchar16)(0));
            const int16 p2 = vload16(0, in_k + i);
            const int16 v4 = convert_int16((p2 > ((int16)(3))));  // gt
            const int16 v5 = convert_int16((p1 && v4));  // logical_and
            const float16 v7 = (p0 * ((float16)(2.0f)));  // mul
            const float16 v8 = convert_float16((p2));  // cast
            const float16 v9 = (v5 ? v7 : v8);  // where
            const int16 v10 = convert_int16((p1 || v4));  // logical_or
            const int16 v11 = (p2 * ((int16)(2)));  // mul
            const int16 v13 = (v11 + ((int16)(1)));  // add
            vstore_half16(v9, 0, out0 + i);
            vstore16(convert_uchar16(-(v10)), 0, out1 + i);
            vstore16(v13, 0, out2 + i);
        }
    } else {
        for (long j = i0; j < n; ++j) {
            const float p0 = vload_half(j, in_h);
            const int p1 = (int)(in_m[j] != 0);
            const int p2 = in_k[j];
            const int v4 = (int)((p2 > 3));  // gt
            const int v5 = (int)((p1 && v4));  // logical_and
            const float v7 = (p0 * 2.0f);  // mul
            const float v8 = ((float)((p2)));  // cast
            const float v9 = (v5 ? v7 : v8);  // where
            const int v10 = (int)((p1 || v4));  // logical_or
            const int v11 = (p2 * 2);  // mul
            const int v13 = (v11 + 1);  // add
            vstore_half(v9, j, out0);
            out1[j] = (uchar)((v10) != 0);
            out2[j] = v13;
        }
    }
}


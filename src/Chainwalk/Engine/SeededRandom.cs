namespace Chainwalk.Engine;

/// <summary>
/// The runtime's seeded random source: the very sequence <c>new System.Random(seed)</c> gives (.NET's seeded generator, a
/// variant of Knuth's subtractive one), every method, so that a seeded trace, a recorded test and a statistic draw read the
/// same numbers as before; with the generator's state in this object, so that a 32-bit draw (<see cref="NextU32"/>:
/// statistic --mode random's get_random_u32, once per endpoint rule a new connection passes) is a few inlined array steps
/// instead of two virtual calls and three out-of-line samples of <see cref="Random.NextInt64(long, long)"/>.
/// </summary>
/// <remarks>
/// Sealed and overriding every virtual member of <see cref="Random"/>: the base class's own generator (made by its
/// constructor, never initialised) is never used. <c>SeededRandomTests</c> compares every method with <c>new Random(seed)</c>.
/// </remarks>
public sealed class SeededRandom : Random
{
    // The generator's steps as a sequence: x[n] = x[n-55] - x[n-34] (with .NET's fix-ups into [0, int.MaxValue)), which is
    // Knuth's table of 55 (positions 1..55, cursors 21 apart) read as the values it held. The sequence does not depend on
    // who reads it, so steps are computed ahead in batches (Refill) into _x, _pos the next one to give out, _fill the end of
    // the computed ones; the 55 before _pos are kept (the recurrence's inputs). A draw run (Ahead, Advance) then reads the
    // next steps without taking them and takes only as many as the linear walk would have drawn.
    private const int Lag = 55, Short = 34, Window = Lag + 1024;
    private readonly int[] _x = new int[Window];
    private int _pos = Lag, _fill = Lag;

    /// <summary>Steps taken before <see cref="_x"/>'s start (a refill moves the kept ones to the front).</summary>
    private long _before;

    /// <summary>A generator whose sequence is <c>new Random(seed)</c>'s.</summary>
    public SeededRandom(int seed) : base(seed)
    {
        // Knuth's table (positions 1..55; 0 unused, as .NET's), then read into the sequence: position i held x[i - 1].
        int[] t = new int[56];
        int subtraction = seed == int.MinValue ? int.MaxValue : Math.Abs(seed);
        int mj = 161803398 - subtraction;
        t[55] = mj;
        int mk = 1;
        int ii = 0;
        for (int i = 1; i < 55; i++)
        {
            ii += 21;
            if (ii >= 55) ii -= 55;
            t[ii] = mk;
            mk = mj - mk;
            if (mk < 0) mk += int.MaxValue;
            mj = t[ii];
        }
        for (int k = 1; k < 5; k++)
        {
            for (int i = 1; i < 56; i++)
            {
                int n = i + 30;
                if (n >= 55) n -= 55;
                t[i] -= t[1 + n];
                if (t[i] < 0) t[i] += int.MaxValue;
            }
        }
        Array.Copy(t, 1, _x, 0, Lag);
    }

    /// <summary>Steps taken since the seed (for tests: how many a walk consumed).</summary>
    internal long Steps => _before + _pos - Lag;

    /// <summary>
    /// Keeps the 55 steps before <see cref="_pos"/> and the computed ones after it at the front, then computes steps up to
    /// the window's end. Without branches on the values (a step's sign is a coin flip).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private void Refill()
    {
        int[] x = _x;
        int from = _pos - Lag;
        if (from > 0)
        {
            Array.Copy(x, from, x, 0, _fill - from);
            _before += from;
            _pos = Lag;
            _fill -= from;
        }
        for (int n = _fill; n < x.Length; n++)
        {
            int v = x[n - Lag] - x[n - Short];
            v -= v == int.MaxValue ? 1 : 0;
            v += (v >> 31) & int.MaxValue;
            x[n] = v;
        }
        _fill = x.Length;
    }

    /// <summary>One step of the generator: a value in [0, int.MaxValue).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private int Step()
    {
        int p = _pos;
        if (p >= _fill)
        {
            Refill();
            p = _pos;
        }
        _pos = p + 1;
        return _x[p];
    }

    /// <summary>The most steps <see cref="Ahead"/> gives (a window of 1024 less what a refill keeps).</summary>
    internal const int MostAhead = 64;

    /// <summary>
    /// The next <paramref name="count"/> (at most <see cref="MostAhead"/>) steps, not taken: a reference to the first; the
    /// others follow it. <see cref="Advance"/> takes them.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal ref int Ahead(int count)
    {
        if (_pos + count > _fill) Refill();
        return ref System.Runtime.CompilerServices.Unsafe.Add(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_x), _pos);
    }

    /// <summary>Takes <paramref name="steps"/> steps that <see cref="Ahead"/> gave (no more than it was asked for).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal void Advance(int steps) => _pos += steps;

    /// <summary>
    /// statistic --mode random's 31 bits (<see cref="NextU32"/> &amp; 0x7FFFFFFF) from its second and third steps (the first
    /// only advances the generator): the same double products as <see cref="Scaled"/> (a product by 2^22 or 2^20 is
    /// exact, so v · (2^k / int.MaxValue) is v · (1 / int.MaxValue) · 2^k).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static uint Draw31(int mid, int high) =>
        (((uint)Truncate(mid * (1.0 / int.MaxValue * (1 << 22))) >> 10) | ((uint)Truncate(high * (1.0 / int.MaxValue * (1 << 20))) << 12)) & 0x7FFFFFFF;

    /// <summary>
    /// (int)d for a d in [0, 2^22): the plain truncating conversion (cvttsd2si), without the saturating checks .NET's cast
    /// adds (the same value in that range).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static int Truncate(double d) => System.Runtime.Intrinsics.X86.Sse2.IsSupported
        ? System.Runtime.Intrinsics.X86.Sse2.ConvertToInt32WithTruncation(System.Runtime.Intrinsics.Vector128.CreateScalarUnsafe(d))
        : (int)d;

    /// <summary>A step scaled into [0, <paramref name="max"/>) as <see cref="Next(int)"/> does (the same double products).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private int Scaled(int max) => (int)(Step() * (1.0 / int.MaxValue) * max);

    /// <summary>A value in [0, ulong.MaxValue] from three scaled steps (22, 22 and 20 bits), as .NET's seeded generator makes it.</summary>
    private ulong NextUInt64() => (uint)Scaled(1 << 22) | ((ulong)(uint)Scaled(1 << 22) << 22) | ((ulong)(uint)Scaled(1 << 20) << 44);

    /// <summary>
    /// <c>NextInt64(0, 1L &lt;&lt; 32)</c> (the same value and the same steps taken): the 64-bit value's top 32 bits, which
    /// are always below 2^32, so the range's retry never happens. The first step only advances the generator.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public uint NextU32()
    {
        int p = _pos;
        if (p + 3 > _fill)
        {
            Refill();
            p = _pos;
        }
        _pos = p + 3;
        int[] x = _x;
        uint mid = (uint)Truncate(x[p + 1] * (1.0 / int.MaxValue) * (1 << 22));
        uint high = (uint)Truncate(x[p + 2] * (1.0 / int.MaxValue) * (1 << 20));
        return (mid >> 10) | (high << 12);
    }

    /// <summary>
    /// <c>(uint)random.NextInt64(0, 1L &lt;&lt; 32)</c>: from <see cref="NextU32"/> for this generator, else through the virtual
    /// call (a <see cref="Random"/> a test or caller set in its place).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static uint U32(Random random) => random is SeededRandom s ? s.NextU32() : (uint)random.NextInt64(0, 1L << 32);

    protected override double Sample() => Step() * (1.0 / int.MaxValue);

    public override int Next() => Step();

    public override int Next(int maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxValue);
        return Scaled(maxValue);
    }

    public override int Next(int minValue, int maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minValue, maxValue);
        long range = (long)maxValue - minValue;
        return range <= int.MaxValue
            ? (int)(Step() * (1.0 / int.MaxValue) * range) + minValue
            : (int)((long)(LargeRangeSample() * range) + minValue);
    }

    public override long NextInt64()
    {
        while (true)
        {
            ulong r = NextUInt64() >> 1;
            if (r != long.MaxValue) return (long)r;
        }
    }

    public override long NextInt64(long maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxValue);
        return Range64(0, maxValue);
    }

    public override long NextInt64(long minValue, long maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minValue, maxValue);
        return Range64(minValue, maxValue);
    }

    private long Range64(long minValue, long maxValue)
    {
        ulong range = (ulong)(maxValue - minValue);
        if (range <= 1) return minValue;
        // The smallest power of two at or above the range (its log2, rounded up).
        int bits = 64 - System.Numerics.BitOperations.LeadingZeroCount(range - 1);
        while (true)
        {
            ulong r = NextUInt64() >> (64 - bits);
            if (r < range) return (long)r + minValue;
        }
    }

    public override double NextDouble() => Sample();

    public override float NextSingle()
    {
        while (true)
        {
            float f = (float)Sample();
            if (f < 1.0f) return f;
        }
    }

    public override void NextBytes(byte[] buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        NextBytes(buffer.AsSpan());
    }

    public override void NextBytes(Span<byte> buffer)
    {
        for (int i = 0; i < buffer.Length; i++) buffer[i] = (byte)Step();
    }

    /// <summary>A sample for a range wider than int.MaxValue: a step, its sign from a second step's parity, scaled into [0, 1).</summary>
    private double LargeRangeSample()
    {
        int result = Step();
        if (Step() % 2 == 0) result = -result;
        double d = result;
        d += int.MaxValue - 1;
        d /= 2u * int.MaxValue - 1;
        return d;
    }
}

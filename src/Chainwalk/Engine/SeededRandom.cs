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
    // Knuth's table (positions 1..55; 0 unused, as .NET's) and the two cursors into it.
    private readonly int[] _table = new int[56];
    private int _next;
    private int _nextP = 21;

    /// <summary>A generator whose sequence is <c>new Random(seed)</c>'s.</summary>
    public SeededRandom(int seed) : base(seed)
    {
        int[] t = _table;
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
    }

    /// <summary>One step of the generator: a value in [0, int.MaxValue).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private int Step()
    {
        int a = _next + 1;
        if (a >= 56) a = 1;
        int b = _nextP + 1;
        if (b >= 56) b = 1;
        int[] t = _table;
        int v = t[a] - t[b];
        if (v == int.MaxValue) v--;
        if (v < 0) v += int.MaxValue;
        t[a] = v;
        _next = a;
        _nextP = b;
        return v;
    }

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
        Step();
        uint mid = (uint)Scaled(1 << 22);
        uint high = (uint)Scaled(1 << 20);
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

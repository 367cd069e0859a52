namespace Chainwalk.Engine;

/// <summary>
/// A rate estimator as net/core/gen_estimator.c keeps one for xt_RATEEST: every 2^interval seconds the bytes and
/// packets counted since the last tick feed an exponentially weighted average (weight 2^-ewma_log); the averages are
/// kept scaled by 2^8 per second, as est_timer does. Ticks are run lazily, when the estimator is used.
/// </summary>
public sealed class RateEstimator
{
    private readonly int _intervalLog; // interval + 2: ticks every 2^interval seconds
    private readonly int _ewmaLog;
    private double _nextTick;
    private ulong _bytes, _packets, _lastBytes, _lastPackets;
    private ulong _avbps, _avpps;

    public RateEstimator(int interval, int ewmaLog, double now)
    {
        _intervalLog = Math.Clamp(interval + 2, 0, 5);
        _ewmaLog = Math.Clamp(ewmaLog, 1, 31);
        _nextTick = now + Period;
    }

    private double Period => Math.Pow(2, _intervalLog - 2);

    /// <summary>Counts a packet of <paramref name="bytes"/> bytes at <paramref name="now"/>.</summary>
    public void Add(double now, uint bytes)
    {
        Advance(now);
        _bytes += bytes;
        _packets++;
    }

    /// <summary>Runs the ticks due by <paramref name="now"/>.</summary>
    public void Advance(double now)
    {
        int guard = 0;
        while (now >= _nextTick && guard++ < 100_000)
        {
            _avbps = Step(_avbps, _bytes - _lastBytes);
            _avpps = Step(_avpps, _packets - _lastPackets);
            _lastBytes = _bytes;
            _lastPackets = _packets;
            _nextTick += Period;
        }
        if (guard >= 100_000) _nextTick = now + Period;
    }

    private ulong Step(ulong average, ulong delta)
    {
        long rate = (long)(delta << (10 - _intervalLog));
        long diff = (rate >> _ewmaLog) - (long)(average >> _ewmaLog);
        return (ulong)((long)average + diff);
    }

    /// <summary>Bytes per second (gen_estimator_read: avbps &gt;&gt; 8).</summary>
    public ulong BytesPerSecond => _avbps >> 8;

    /// <summary>Packets per second.</summary>
    public ulong PacketsPerSecond => _avpps >> 8;

    public ulong TotalBytes => _bytes;

    public ulong TotalPackets => _packets;
}

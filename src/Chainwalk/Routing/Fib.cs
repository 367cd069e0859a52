using System.Collections.Concurrent;
using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Routing;

/// <summary>
/// What routing derives from a host, made once per host generation (<see cref="VirtualHost.Generation"/>) (the kernel keeps its FIB
/// tries and per-device configuration ready; deriving the kernel routes from the addresses for every packet
/// is what this saves): the IPv4 tables in lookup order, the per-device sysctls the input path reads, and the
/// decisions that carry no per-packet data, shared between packets (they are immutable records). The caches are
/// concurrent dictionaries: hosts are usually used by one thread, but nothing forbids two netfilters on one host.
/// </summary>
internal sealed class Fib
{
    private Fib(VirtualHost host, long generation)
    {
        Host = host;
        Generation = generation;
        // Tables local and main are one trie without rules of their own (see RouteLookup.FibLookup4), then default:
        // within each pass the longest prefix first, then the lowest metric, ties in the tables' own order (a stable sort).
        V4Main = Ordered(Network.Routes(host, IpFamily.V4, "local").Concat(Network.Routes(host, IpFamily.V4, "main")));
        V4Default = Ordered(Network.Routes(host, IpFamily.V4, "default"));
        V4Local = Network.Routes(host, IpFamily.V4, "local").OrderByDescending(r => r.PrefixLength).ToArray();
        V6Local = Network.Routes(host, IpFamily.V6, "local").ToArray();
        V6Main = Network.Routes(host, IpFamily.V6, "main").ToArray();
    }

    /// <summary>IPv6 table local, in Network.Routes' order (the IPv6 lookup groups and orders it itself).</summary>
    public RouteView[] V6Local { get; }

    /// <summary>IPv6 table main, in Network.Routes' order.</summary>
    public RouteView[] V6Main { get; }

    public VirtualHost Host { get; }

    public long Generation { get; }

    /// <summary>Tables local + main, in lookup order.</summary>
    public RouteView[] V4Main { get; }

    /// <summary>Table default, in lookup order.</summary>
    public RouteView[] V4Default { get; }

    /// <summary>Table local, longest prefix first (address types).</summary>
    public RouteView[] V4Local { get; }

    private static RouteView[] Ordered(IEnumerable<RouteView> routes) =>
        routes.OrderByDescending(r => r.PrefixLength).ThenBy(r => r.Metric).ToArray();

    /// <summary>The host's derived state for the current generation (made again when the host changed).</summary>
    public static Fib Of(VirtualHost host)
    {
        long g = host.Generation;
        if (host.Derived is Fib f && f.Generation == g) return f;
        f = new Fib(host, g);
        host.Derived = f;
        return f;
    }

    private InputPlan4? _input4Plan;
    private int _input4Planned;

    /// <summary>The IPv4 input decisions worked out from the tables (<see cref="InputPlan4"/>), made on the first call; null for a host with too many routes.</summary>
    public InputPlan4? Input4Plan
    {
        get
        {
            if (Volatile.Read(ref _input4Planned) != 0) return _input4Plan;
            InputPlan4? p = RouteLookup.PlanInput4(this);
            _input4Plan = p;
            Volatile.Write(ref _input4Planned, 1);
            return p;
        }
    }

    /// <summary>The IPv4 settings of one input device that the input route reads (IN_DEV_* of its in_device and "all").</summary>
    public sealed record DeviceConf(bool RouteLocalnet, bool Forwarding, int RpFilter, bool AcceptLocal, bool TxRedirects, bool HasIpv4Address, bool IsLoopback);

    private readonly ConcurrentDictionary<string, DeviceConf> _devices = new(StringComparer.Ordinal);

    public DeviceConf Device(string dev, Func<VirtualHost, string, DeviceConf> make)
    {
        // The last device asked, by the identity of its name string (packet after packet the same), before the dictionary.
        if (_lastDevice is { } last && ReferenceEquals(last.Name, dev)) return last.Conf;
        if (!_devices.TryGetValue(dev, out DeviceConf? c))
        {
            c = make(Host, dev);
            _devices[dev] = c;
        }
        _lastDevice = new LastDevice(dev, c);
        return c;
    }

    private sealed record LastDevice(string Name, DeviceConf Conf);

    private LastDevice? _lastDevice;

    private readonly ConcurrentDictionary<(RouteView Route, bool Redirect), InputDecision> _forward = new(ReferenceKeyComparer.Instance);

    /// <summary>The forwarding decision through <paramref name="r"/> (shared: it holds nothing of the packet).</summary>
    public InputDecision Forward(RouteView r, bool redirect)
    {
        // The last decision given, before the dictionary (one object: read and written whole).
        if (_lastForward is { } last && ReferenceEquals(last.Route.Route, r) && last.Redirect == redirect) return last;
        InputDecision d = ForwardSlow(r, redirect);
        _lastForward = d;
        return d;
    }

    private InputDecision? _lastForward;

    private InputDecision ForwardSlow(RouteView r, bool redirect)
    {
        if (!_forward.TryGetValue((r, redirect), out InputDecision? d))
        {
            var route = new RouteResult(RouteType.Unicast, RouteError.None) { Device = r.Device, Gateway = r.Via, Route = r };
            d = new InputDecision(InputVerdict.Forward, InputDropReason.None, route) { Redirect = redirect };
            _forward[(r, redirect)] = d;
        }
        return d;
    }

    private readonly ConcurrentDictionary<(RouteView Route, bool Redirect), InputDecision> _local = new(ReferenceKeyComparer.Instance);

    /// <summary>The local delivery decision of route <paramref name="r"/> (type local).</summary>
    public InputDecision Local(RouteView r)
    {
        if (!_local.TryGetValue((r, false), out InputDecision? d))
        {
            d = new InputDecision(InputVerdict.Local, InputDropReason.None, new RouteResult(RouteType.Local, RouteError.None) { Device = "lo", Route = r });
            _local[(r, false)] = d;
        }
        return d;
    }

    /// <summary>Route views by identity (records compare by value, which costs more and is not what is meant here).</summary>
    private sealed class ReferenceKeyComparer : IEqualityComparer<(RouteView Route, bool Redirect)>
    {
        public static readonly ReferenceKeyComparer Instance = new();

        public bool Equals((RouteView Route, bool Redirect) x, (RouteView Route, bool Redirect) y) =>
            ReferenceEquals(x.Route, y.Route) && x.Redirect == y.Redirect;

        public int GetHashCode((RouteView Route, bool Redirect) k) =>
            System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(k.Route) * 2 + (k.Redirect ? 1 : 0);
    }

    private readonly ConcurrentDictionary<string, int?> _ints = new(StringComparer.Ordinal);

    /// <summary>The same by the key string's identity: the keys are mostly literals, found without hashing their text.</summary>
    private readonly ConcurrentDictionary<string, int?> _intsByReference = new(ReferenceEqualityComparer.Instance);

    // Entry counts kept beside the bounded caches (ConcurrentDictionary.Count takes every lock).
    private int _intsByReferenceCount, _outputCount, _sourceCount;

    /// <summary>An integer sysctl found before, by the key string's identity (one immutable entry per slot: a slot is read or replaced whole).</summary>
    private sealed record IntEntry(string Key, int? Value);

    private readonly IntEntry?[] _intSlots = new IntEntry?[64];

    /// <summary>An integer sysctl, parsed once per generation; <paramref name="fallback"/> when absent or not a number.</summary>
    public int Int(string key, int fallback)
    {
        // Up to four slots from the key's: identity hash codes are pseudo-random per object, so two keys used on every
        // packet may share a slot; one slot each made them replace each other (an entry allocated per packet).
        int home = System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(key);
        int slot = home & (64 - 1);
        for (int probe = 0; probe < 4; probe++)
        {
            int s = (home + probe) & (64 - 1);
            IntEntry? e = _intSlots[s];
            if (e is null)
            {
                slot = s;
                break;
            }
            if (ReferenceEquals(e.Key, key)) return e.Value ?? fallback;
        }
        if (_intsByReference.TryGetValue(key, out int? v))
        {
            _intSlots[slot] = new IntEntry(key, v);
            return v ?? fallback;
        }
        if (!_ints.TryGetValue(key, out v))
        {
            v = Host.GetSysctl(key) is { } s && int.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int n) ? n : null;
            _ints[key] = v;
        }
        if (string.IsInterned(key) is not null && _intsByReference.TryAdd(key, v)) Interlocked.Increment(ref _intsByReferenceCount);
        if (_intsByReferenceCount > 4096)
        {
            _intsByReference.Clear();
            _intsByReferenceCount = 0;
        }
        return v ?? fallback;
    }

    private readonly ConcurrentDictionary<(IpFamily Family, UInt128 Destination, UInt128? Source, string? Device), RouteResult> _outputs = new();

    /// <summary>An output route (immutable, shared) worked out earlier in this generation for its destination, source and device.</summary>
    public bool TryGetOutput(IpFamily family, UInt128 dst, UInt128? src, string? oif, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out RouteResult? r) =>
        _outputs.TryGetValue((family, dst, src, oif), out r);

    public void KeepOutput(IpFamily family, UInt128 dst, UInt128? src, string? oif, RouteResult r)
    {
        if (_outputCount >= 65536)
        {
            _outputs.Clear();
            _outputCount = 0;
        }
        if (_outputs.TryAdd((family, dst, src, oif), r)) Interlocked.Increment(ref _outputCount);
    }

    private readonly ConcurrentDictionary<(string? Device, UInt128 Destination, int Scope), UInt128?> _sources4 = new();

    /// <summary>inet_select_addr's answer for (device, destination, scope), worked out once per generation.</summary>
    public UInt128? Source4(string? dev, UInt128 dst, int scope, Func<VirtualHost, string?, UInt128, int, UInt128?> make)
    {
        if (!_sources4.TryGetValue((dev, dst, scope), out UInt128? a))
        {
            a = make(Host, dev, dst, scope);
            if (_sourceCount >= 65536)
            {
                _sources4.Clear();
                _sourceCount = 0;
            }
            if (_sources4.TryAdd((dev, dst, scope), a)) Interlocked.Increment(ref _sourceCount);
        }
        return a;
    }
}

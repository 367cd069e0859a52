using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Routing;

/// <summary>
/// The IPv4 input decision (<see cref="RouteLookup.Input4(VirtualHost, UInt128, UInt128, string)"/>) of a host with a
/// handful of routes, worked out per packet from a few cache lines instead of remembered per (destination, source): the
/// host's IPv4 routes in lookup order as (prefix, mask, what the lookup does there), its own addresses, and its devices'
/// settings, made once per host generation (<see cref="Fib"/>). It answers only where the full path would give a shared
/// decision (<see cref="Fib.Forward"/> or <see cref="Fib.Local"/>) and returns that same object; every other case
/// (martian and loopback addresses, multicast, broadcast, no route, reject routes, forwarding off, a refused source,
/// rp_filter 2's lookup through the input device) is left to the full path (null).
/// </summary>
/// <remarks>
/// What the decision depends on (ip_route_input_slow, fib_validate_source; no <c>ip rule</c>s here, so neither the mark
/// nor the TOS): the destination's route (fib_lookup by destination: local + main, then default); the source only
/// through its address class (martians), whether it is one of our addresses (rp_filter 0, no accept_local) or its
/// route back (rp_filter on, or a redirect to decide: the device and gateway of the route to the source); the input
/// device's settings (forwarding, rp_filter, accept_local, send_redirects, route_localnet). Nothing of it is per flow.
/// </remarks>
internal sealed class InputPlan4
{
    /// <summary>The most routes (both passes) a plan is made for; a larger table keeps the per-(destination, source) memo.</summary>
    internal const int MaxRoutes = 32;

    private const byte ActRoute = 0, ActSkip = 1, ActThrow = 2, ActReject = 3;

    private const byte KindUnicast = 0, KindLocal = 1, KindOther = 2;

    /// <summary>One route in lookup order: the prefix and its mask, what the lookup does when it covers the address, and where a throw goes.</summary>
    private struct Step
    {
        public uint Prefix;
        public uint Mask;
        public byte Action;
        public byte Kind;
        public bool Gateway;
        public short ThrowTo;

        /// <summary>The route's device as its index in the plan's devices (-1: none, or not a link of the host).</summary>
        public int Device;
    }

    private readonly Step[] _steps;

    /// <summary>
    /// The steps that can cover an address, per /8 block of the address space (a trie's first stride): block b's steps are
    /// _blockSteps[_blockStart[b] .. _blockStart[b + 1]), in lookup order. A route of /8 or longer lies in one block; a
    /// shorter one covers whole blocks.
    /// </summary>
    private readonly ushort[] _blockStart;
    private readonly byte[] _blockSteps;

    /// <summary>
    /// Per /16 block: 0 when an address in it needs the steps (a route longer than /16 inside the block, one of our
    /// addresses in it, or a martian, loopback, multicast or class E block), else <see cref="Lookup"/>'s answer for every
    /// address of the block + 3 (one byte: -2 and -1 are 1 and 2). With no route longer than /16 inside it every address of
    /// the block is covered by the same routes in the same order, so one lookup answers for all. Real traffic meets few
    /// blocks: few lines of it stay in the cache.
    /// </summary>
    private readonly byte[] _by16;

    /// <summary>
    /// The decision by (input device, destination's step) when it needs of the source only that it is no martian and not
    /// ours (no reverse path filter on the device, no redirect to decide): _quick[device * steps + step], else null.
    /// </summary>
    private readonly InputDecision?[] _quick;

    /// <summary>The device found last (packets after packets arrive on one).</summary>
    private DevicePlan? _lastDevice;
    private readonly RouteView[] _routes;
    private readonly uint[] _local;
    private readonly DevicePlan[] _links;
    private readonly Fib _fib;

    /// <summary>The shared decisions by step: forward without and with the redirect flag, local.</summary>
    private readonly InputDecision?[] _forward, _forwardRedirect, _localDecision;

    /// <summary>An input device's settings (Fib.DeviceConf) and its index among the plan's devices.</summary>
    private sealed record DevicePlan(string Name, int Index, bool Forwarding, int RpFilter, bool AcceptLocal, bool TxRedirects, bool HasIpv4Address, bool IsLoopback)
    {
        /// <summary>The last other string of the same name asked for (packets name their device with their own string): found by identity next time.</summary>
        public string? Alias;
    }

    private InputPlan4(Fib fib, Step[] steps, RouteView[] routes, uint[] local, DevicePlan[] links)
    {
        _fib = fib;
        _steps = steps;
        _blockStart = new ushort[257];
        var flat = new List<byte>();
        for (int b = 0; b < 256; b++)
        {
            _blockStart[b] = (ushort)flat.Count;
            uint first = (uint)b << 24;
            for (int i = 0; i < steps.Length; i++)
            {
                bool inBlock = steps[i].Mask >= 0xFF000000u ? steps[i].Prefix >> 24 == (uint)b : (first & steps[i].Mask) == steps[i].Prefix;
                if (inBlock) flat.Add((byte)i);
            }
        }
        _blockStart[256] = (ushort)flat.Count;
        _blockSteps = [.. flat];
        _quick = new InputDecision?[links.Length * steps.Length];
        foreach (DevicePlan dv in links)
        {
            for (int step = 0; step < steps.Length; step++)
            {
                ref Step st = ref steps[step];
                bool isLocal = st.Kind == KindLocal;
                int oif = isLocal ? -1 : st.Device;
                if (st.Action != ActRoute || !(isLocal || (st.Kind == KindUnicast && dv.Forwarding)) || dv.RpFilter != 0 || (dv.Index == oif && dv.TxRedirects)) continue;
                // fib_validate_source without a reverse path filter (and no redirect to decide): only our own addresses are refused.
                _quick[dv.Index * steps.Length + step] = isLocal ? fib.Local(routes[step]) : fib.Forward(routes[step], false);
            }
        }
        _by16 = new byte[65536];
        for (int b8 = 0; b8 < 256; b8++)
        {
            if (!Plain((uint)b8 << 24)) continue;
            // Routes longer than /8 or own addresses inside this /8: each /16 decided alone; else one lookup for the 256.
            bool mixed = local.Any(a => a >> 24 == (uint)b8);
            for (int k = _blockStart[b8]; k < _blockStart[b8 + 1] && !mixed; k++) mixed = steps[_blockSteps[k]].Mask > 0xFF000000u;
            byte whole = mixed ? (byte)0 : (byte)(Lookup((uint)b8 << 24) + 3);
            for (int b16 = b8 << 8; b16 < (b8 + 1) << 8; b16++)
            {
                if (!mixed)
                {
                    _by16[b16] = whole;
                    continue;
                }
                uint first = (uint)b16 << 16;
                bool longer = local.Any(a => a >> 16 == (uint)b16);
                for (int k = _blockStart[b8]; k < _blockStart[b8 + 1] && !longer; k++)
                {
                    ref Step st = ref steps[_blockSteps[k]];
                    longer = st.Mask > 0xFFFF0000u && st.Prefix >> 16 == (uint)b16;
                }
                _by16[b16] = longer ? (byte)0 : (byte)(Lookup(first) + 3);
            }
        }
        _routes = routes;
        _local = local;
        _links = links;
        _forward = new InputDecision?[routes.Length];
        _forwardRedirect = new InputDecision?[routes.Length];
        _localDecision = new InputDecision?[routes.Length];
    }

    /// <summary>The plan of <paramref name="fib"/>'s host, or null when its tables are too large for one.</summary>
    internal static InputPlan4? Make(Fib fib, Func<RouteView, bool> skipped, Func<string, Fib.DeviceConf> conf)
    {
        VirtualHost host = fib.Host;
        if (fib.V4Main.Length + fib.V4Default.Length > MaxRoutes) return null;
        RouteView[] routes = [.. fib.V4Main, .. fib.V4Default];
        Link[] hostLinks = [.. host.Links];
        var steps = new Step[routes.Length];
        for (int i = 0; i < routes.Length; i++)
        {
            RouteView r = routes[i];
            uint mask = r.PrefixLength == 0 ? 0 : uint.MaxValue << (32 - r.PrefixLength);
            // A prefix wider than 32 bits cannot be an IPv4 route's; such a table is left to the full path.
            if (r.Prefix > uint.MaxValue || r.PrefixLength is < 0 or > 32) return null;
            byte act = r.Type switch
            {
                "throw" => ActThrow,
                "unreachable" or "prohibit" or "blackhole" => ActReject,
                _ => r.LinkDown && skipped(r) ? ActSkip : ActRoute,
            };
            byte kind = r.Type switch
            {
                "unicast" => KindUnicast,
                "local" => KindLocal,
                _ => KindOther,
            };
            steps[i] = new Step
            {
                Prefix = (uint)r.Prefix,
                Mask = mask,
                Action = act,
                Kind = kind,
                Gateway = r.Via is not null,
                ThrowTo = (short)(i < fib.V4Main.Length ? fib.V4Main.Length : routes.Length),
                Device = Array.FindIndex(hostLinks, l => string.Equals(l.Name, r.Device, StringComparison.Ordinal)),
            };
        }
        uint[] local = host.Addresses.Where(a => a.Family == IpFamily.V4 && !a.Tentative).Select(a => (uint)a.Address).ToArray();
        DevicePlan[] links = hostLinks.Select((l, i) =>
        {
            Fib.DeviceConf c = conf(l.Name);
            return new DevicePlan(l.Name, i, c.Forwarding, c.RpFilter, c.AcceptLocal, c.TxRedirects, c.HasIpv4Address, c.IsLoopback);
        }).ToArray();
        return new InputPlan4(fib, steps, routes, local, links);
    }

    /// <summary>
    /// fib_lookup with the default rules for <paramref name="a"/> (oif unset): the step of the route found, -1 none, -2 a
    /// reject route (both: an error for the caller).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private int Lookup(uint a)
    {
        Step[] steps = _steps;
        byte[] order = _blockSteps;
        int b = (int)(a >> 24);
        // A throw goes on with the next table's routes: the steps before ThrowTo are passed over.
        int floor = 0;
        for (int k = _blockStart[b], end = _blockStart[b + 1]; k < end; k++)
        {
            int i = order[k];
            ref Step s = ref steps[i];
            if ((a & s.Mask) != s.Prefix || i < floor) continue;
            switch (s.Action)
            {
                case ActRoute: return i;
                case ActReject: return -2;
                case ActThrow:
                    floor = s.ThrowTo;
                    continue;
                default: continue;
            }
        }
        return -1;
    }

    /// <summary>Whether <paramref name="a"/> is one of the host's IPv4 addresses (RouteLookup.IsLocalAddress).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool IsLocal(uint a)
    {
        foreach (uint l in _local)
        {
            if (l == a) return true;
        }
        return false;
    }

    /// <summary>The link named <paramref name="dev"/> (null: no such link), by the string's identity first.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private DevicePlan? DeviceOf(string dev)
    {
        if (_lastDevice is { } last && (ReferenceEquals(last.Name, dev) || ReferenceEquals(last.Alias, dev))) return last;
        DevicePlan[] links = _links;
        for (int i = 0; i < links.Length; i++)
        {
            if (ReferenceEquals(links[i].Name, dev) || ReferenceEquals(links[i].Alias, dev)) return _lastDevice = links[i];
        }
        for (int i = 0; i < links.Length; i++)
        {
            if (string.Equals(links[i].Name, dev, StringComparison.Ordinal))
            {
                links[i].Alias = dev;
                return _lastDevice = links[i];
            }
        }
        return null;
    }

    /// <summary>
    /// fib_validate_source (RouteLookup.ValidateSourceCore) where it needs no lookup through a device: -1 refused, 0
    /// accepted, 1 accepted with the source on the link; 2: not decided here.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private int Validate(uint src, DevicePlan d, int oif)
    {
        int rpf = d.RpFilter;
        if (rpf == 0 && (d.Index != oif || !d.TxRedirects))
        {
            if (d.AcceptLocal) return 0;
            return IsLocal(src) ? -1 : 0;
        }
        int back = Lookup(src);
        if (back < 0) return rpf != 0 ? -1 : 0;
        ref Step s = ref _steps[back];
        if (s.Kind != KindUnicast && !(s.Kind == KindLocal && d.AcceptLocal)) return -1;
        bool devMatch = s.Device == d.Index || (s.Kind == KindLocal && d.IsLoopback);
        if (devMatch) return s.Gateway ? 0 : 1;
        if (!d.HasIpv4Address) return rpf != 0 ? -1 : 0;
        if (rpf == 1) return -1;
        return 2;
    }

    /// <summary>Not in 0/8, 127/8 or 224/3 (multicast, class E, the limited broadcast): the input path's martian and loopback tests pass.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool Plain(uint a)
    {
        uint top = a >> 24;
        return top != 0 && top != 127 && top < 224;
    }

    /// <summary>The decision RouteLookup.Input4 gives for (<paramref name="dst"/>, <paramref name="src"/>, <paramref name="dev"/>), when it is a shared one; else null.</summary>
    internal InputDecision? Decide(uint dst, uint src, string dev)
    {
        byte[] by16 = _by16;
        int db = by16[(int)(dst >> 16)];
        // The destination in a plain block (its route is the block's), the source no martian and not ours (unless accept_local).
        if (db >= 3 && Plain(src) && DeviceOf(dev) is { } dv && _quick[dv.Index * _steps.Length + db - 3] is { } quick && (dv.AcceptLocal || !IsLocal(src)))
        {
            return quick;
        }
        return DecideSteps(dst, src, dev);
    }

    /// <summary><see cref="Decide"/> by the steps (the blocks' shortcut did not apply).</summary>
    private InputDecision? DecideSteps(uint dst, uint src, string dev)
    {
        if (!Plain(dst) || !Plain(src) || DeviceOf(dev) is not { } d) return null;
        int at = Lookup(dst);
        if (at < 0) return null;
        byte kind = _steps[at].Kind;
        if (kind == KindLocal)
        {
            if (Validate(src, d, -1) is < 0 or 2) return null;
            return _localDecision[at] ??= _fib.Local(_routes[at]);
        }
        if (kind != KindUnicast || !d.Forwarding) return null;
        int oif = _steps[at].Device;
        int valid = Validate(src, d, oif);
        if (valid is < 0 or 2) return null;
        if (oif == d.Index && valid > 0) return _forwardRedirect[at] ??= _fib.Forward(_routes[at], true);
        return _forward[at] ??= _fib.Forward(_routes[at], false);
    }
}

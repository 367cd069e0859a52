using System.Diagnostics.Tracing;

namespace Chainwalk.Bench;

/// <summary>
/// Which types a section of code allocates, by sampling the runtime's GCAllocationTick events (one per ~100 KB
/// allocated, with the type that crossed the mark): a poor man's allocation profiler for the harness's
/// <c>--only profile</c> mode, where dotnet-trace is not installed.
/// </summary>
public sealed class AllocationProfile : EventListener
{
    private readonly Dictionary<string, long> _bytes = new(StringComparer.Ordinal);
    private bool _on;

    public void Start() => _on = true;

    public void Stop() => _on = false;

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime") EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1);
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (!_on || e.EventName is null || !e.EventName.StartsWith("GCAllocationTick", StringComparison.Ordinal) || e.Payload is null) return;
        int ti = e.PayloadNames!.IndexOf("TypeName");
        int ai = e.PayloadNames.IndexOf("AllocationAmount64");
        string type = ti >= 0 ? e.Payload[ti] as string ?? "?" : "?";
        long amount = ai >= 0 ? Convert.ToInt64(e.Payload[ai], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
        lock (_bytes) _bytes[type] = _bytes.TryGetValue(type, out long v) ? v + amount : amount;
    }

    public IEnumerable<(string Type, long Bytes)> Top(int n)
    {
        lock (_bytes) return _bytes.OrderByDescending(kv => kv.Value).Take(n).Select(kv => (kv.Key, kv.Value)).ToList();
    }
}
